"""A local Stripe-compatible API for the look-up benchmark (``python -m bench.stripe_api
PORT``): ``GET /v1/invoice_payments`` answers that no invoice is paid by the PaymentIntent
(a one-time payment), ``GET /v1/webhook_endpoints`` lists none."""

from __future__ import annotations

import sys

from aiohttp import web

__all__ = ["make_app"]


def _empty(url: str) -> web.Response:
    return web.json_response({"object": "list", "data": [], "has_more": False, "url": url})


def make_app() -> web.Application:
    async def invoice_payments(request: web.Request) -> web.Response:
        return _empty("/v1/invoice_payments")

    async def webhook_endpoints(request: web.Request) -> web.Response:
        return _empty("/v1/webhook_endpoints")

    app = web.Application()
    app.router.add_get("/v1/invoice_payments", invoice_payments)
    app.router.add_get("/v1/webhook_endpoints", webhook_endpoints)
    return app


def main(argv: list[str]) -> int:
    web.run_app(make_app(), host="127.0.0.1", port=int(argv[1]), print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
