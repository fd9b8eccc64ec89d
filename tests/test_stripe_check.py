"""What paybridge needs from Stripe, checked: `paybridge check --stripe` against a local
Stripe-compatible server holding an endpoint that misses some event types, the same warning in
the start-up log, and what `check` says without an API key."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.stripe_setup import event_types
from bridge.cli import main
from tests.conftest import STRIPE_SECRET, BridgeFactory
from tests.receivers import wait_until

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
KEY = "rk_test_local_setup_check"
MISSING = ["invoice_payment.paid", "invoice.payment_failed"]


def _account(seen: list[str]) -> web.Application:
    """A Stripe account with two endpoints: paybridge's (missing ``MISSING``) and another."""

    async def webhook_endpoints(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        ours = {"id": "we_ours", "object": "webhook_endpoint", "status": "enabled",
                "url": "https://shop.example/webhooks/stripe", "api_version": "2025-03-31.basil",
                "enabled_events": [t for t in event_types() if t not in MISSING]}  # fmt: skip
        other = {"id": "we_other", "object": "webhook_endpoint", "status": "enabled",
                 "url": "https://crm.example/hook", "api_version": None,
                 "enabled_events": ["customer.created"]}  # fmt: skip
        body = {"object": "list", "data": [ours, other], "has_more": False}
        return web.json_response({**body, "url": "/v1/webhook_endpoints"})

    app = web.Application()
    app.router.add_get("/v1/webhook_endpoints", webhook_endpoints)
    return app


def _config(tmp_path: Path, stripe: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(
        f'store: {{url: "sqlite:///{tmp_path}/p.db"}}\n'
        f'sources:\n  stripe: {{signing_secrets: ["{STRIPE_SECRET}"]{stripe}}}\n',
        encoding="utf-8",
    )
    return str(path)


async def test_check_stripe_reports_the_matching_endpoints_missing_types_and_version(
    tmp_path: Path, aiohttp_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[str] = []
    server = await aiohttp_server(_account(seen))
    base = str(server.make_url("")).rstrip("/")
    path = _config(tmp_path, f", api_key: {KEY}, api_base: '{base}'")

    code = await asyncio.to_thread(main, ["check", "--stripe", "-c", path])

    out = capsys.readouterr().out
    assert code == 1 and seen == [f"Bearer {KEY}"]
    assert "we_ours https://shop.example/webhooks/stripe" in out and "2025-03-31.basil" in out
    assert f"not subscribed to: {', '.join(sorted(MISSING))}" in out
    assert "we_other" not in out and KEY not in out
    named = ["check", "--stripe", "--url", "https://crm.example/hook", "-c", path]
    assert await asyncio.to_thread(main, named) == 1
    assert "we_other" in capsys.readouterr().out


async def test_check_stripe_when_stripe_refuses_the_key_says_which_permission(
    tmp_path: Path, aiohttp_server: ServerFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    async def refuse(request: web.Request) -> web.Response:
        error = {"type": "invalid_request_error", "message": "The provided key does not have"
                 " the required permissions for this endpoint"}  # fmt: skip
        return web.json_response({"error": error}, status=403)

    app = web.Application()
    app.router.add_get("/v1/webhook_endpoints", refuse)
    server = await aiohttp_server(app)
    path = _config(tmp_path, f", api_key: {KEY}, api_base: '{server.make_url('')}'")

    assert await asyncio.to_thread(main, ["check", "--stripe", "-c", path]) == 1
    assert "Webhook Endpoints: Read" in capsys.readouterr().out


def test_check_without_a_key_prints_the_types_to_subscribe_and_the_basil_delay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, "")

    assert main(["check", "--stripe", "-c", path]) == 0
    out = capsys.readouterr().out
    assert all(f"  {t}: " in out for t in event_types())
    assert "decided only after correlation_window_s (120 s)" in out and "invoice_read" in out
    assert main(["check", "-c", path]) == 0
    assert "Invoices: Read" in capsys.readouterr().out


async def test_startup_log_warns_about_the_endpoints_missing_types(
    make_bridge: BridgeFactory, aiohttp_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.correlation")
    seen: list[str] = []
    server = await aiohttp_server(_account(seen))
    await make_bridge(
        "sources: {{stripe: {{api_key: {key}, api_base: '{base}'}}}}",
        key=KEY,
        base=str(server.make_url("")).rstrip("/"),
    )
    await wait_until(
        lambda: any("not subscribed to" in r.getMessage() for r in caplog.records),
        "no start-up warning",
    )
    message = next(r.getMessage() for r in caplog.records if "not subscribed" in r.getMessage())
    assert "we_ours" in message and "invoice_payment.paid" in message and KEY not in message


async def test_startup_log_without_a_key_says_one_time_payment_intents_wait(
    make_bridge: BridgeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.correlation")
    await make_bridge()
    messages: list[Any] = [r.getMessage() for r in caplog.records]
    assert any("decided only after correlation_window_s" in m and "invoice_read" in m
               for m in messages)  # fmt: skip
