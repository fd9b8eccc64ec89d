"""Embed paybridge in an existing aiohttp application, with in-process handlers.

Run it:  python examples/embed_in_aiohttp.py config.example.yaml
Then Stripe (or `paybridge trigger … --to http://127.0.0.1:8080/payments/webhooks/stripe`)
posts to /payments/webhooks/stripe and the handlers below run, at least once each.
"""

from __future__ import annotations

import logging
import sys

from aiohttp import web

from bridge import Bridge, Event

log = logging.getLogger("shop")

# What the shop has granted, by customer (a real app would use its own database).
GRANTS: dict[str, list[str]] = {}


def build_app(
    config_path: str = "config.example.yaml", bridge: Bridge | None = None
) -> web.Application:
    """The shop's application with paybridge mounted under ``/payments/``."""
    bridge = bridge or Bridge.from_config(config_path)

    @bridge.bus.on("customer.subscription.started")
    async def grant_subscription(event: Event) -> None:
        sub = event.data["object"]
        GRANTS.setdefault(str(sub.get("customer")), []).append(f"subscription:{sub['id']}")
        log.info("granted subscription %s", sub["id"])

    @bridge.bus.on("payment.succeeded")
    async def record_payment(event: Event) -> None:
        summary = event.data["object"]
        log.info(
            "payment %s %s %s", summary.get("kind"), summary.get("amount"), summary.get("currency")
        )

    async def index(_request: web.Request) -> web.Response:
        return web.json_response({"grants": GRANTS})

    app = web.Application()
    app.router.add_get("/", index)
    app.add_subapp("/payments/", bridge.web_app())
    return app


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    web.run_app(build_app(sys.argv[1] if len(sys.argv) > 1 else "config.example.yaml"))
