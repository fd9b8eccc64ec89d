"""A Bridge with a Stripe API key stopped right after start: the start-up webhook-endpoint
check still waiting on Stripe is cancelled, its connection closed, and no task of the bridge is
left running, so a local Stripe-compatible server shuts down at once. With Stripe unreachable
start and stop still go through, with a warning."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bridge.service import Bridge
from tests.conftest import make_config
from tests.receivers import wait_until

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
KEY = "rk_test_local_shutdown"


def _stalling_account(seen: list[web.Request], release: asyncio.Event) -> web.Application:
    """A Stripe account that answers the webhook-endpoint list only once ``release`` is set."""

    async def webhook_endpoints(request: web.Request) -> web.Response:
        seen.append(request)
        await release.wait()
        body = {"object": "list", "data": [], "has_more": False, "url": request.path}
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/v1/webhook_endpoints", webhook_endpoints)
    return app


def _others() -> set[asyncio.Task[object]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def test_stop_right_after_start_cancels_the_stripe_check_and_closes_its_connection(
    tmp_path: Path, aiohttp_server: ServerFactory
) -> None:
    seen: list[web.Request] = []
    release = asyncio.Event()
    server = await aiohttp_server(_stalling_account(seen, release))
    base = str(server.make_url("")).rstrip("/")
    before = _others()
    yaml = "sources: {{stripe: {{api_key: {key}, api_base: '{base}'}}}}"
    bridge = Bridge(make_config(tmp_path, yaml, key=KEY, base=base))
    await bridge.start()
    await wait_until(lambda: bool(seen), "the start-up check never asked Stripe")

    await bridge.stop()

    assert _others() <= before, "a task of the bridge is still pending after stop()"
    transport = seen[0].transport
    await wait_until(
        lambda: transport is None or transport.is_closing(),
        "the Stripe connection is still open after stop()",
    )
    async with asyncio.timeout(30):  # generous: a held connection stalls shutdown for 60 s
        await server.close()
    assert not release.is_set()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_unreachable_stripe_does_not_hold_start_or_stop_and_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.correlation")
    base = f"http://127.0.0.1:{_closed_port()}"
    before = _others()
    yaml = "sources: {{stripe: {{api_key: {key}, api_base: '{base}'}}}}"
    bridge = Bridge(make_config(tmp_path, yaml, key=KEY, base=base))
    async with asyncio.timeout(30):
        await bridge.start()
        await wait_until(
            lambda: any("not checked" in r.getMessage() for r in caplog.records),
            "no warning that Stripe could not be reached",
        )
        await bridge.stop()
    assert _others() <= before, "a task of the bridge is still pending after stop()"
    assert all(KEY not in r.getMessage() for r in caplog.records)
