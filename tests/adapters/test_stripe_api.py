"""adapters.stripe_api against a local Stripe-compatible aiohttp server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import orjson
import pytest
import stripe
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.stripe import StripeAdapter
from adapters.stripe_api import fetch_related_object, find_invoice_for_payment_intent, make_client

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
KEY = "sk_test_local"


def _fake_stripe(seen: list[web.Request]) -> web.Application:
    async def invoice_payments(request: web.Request) -> web.Response:
        seen.append(request)
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return web.json_response({"error": {"type": "invalid_request_error"}}, status=401)
        pi = request.query.get("payment[payment_intent]")
        data = []
        if pi == "pi_paying":
            data = [{"id": "inpay_1", "object": "invoice_payment", "invoice": "in_42",
                     "payment": {"type": "payment_intent", "payment_intent": pi}}]  # fmt: skip
        return web.json_response({"object": "list", "data": data, "has_more": False,
                                  "url": "/v1/invoice_payments"})  # fmt: skip

    async def subscription(request: web.Request) -> web.Response:
        seen.append(request)
        return web.json_response({"id": request.match_info["id"], "object": "subscription",
                                  "status": "active"})  # fmt: skip

    app = web.Application()
    app.router.add_get("/v1/invoice_payments", invoice_payments)
    app.router.add_get("/v1/subscriptions/{id}", subscription)
    return app


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _server(aiohttp_server: ServerFactory, seen: list[web.Request]) -> str:
    server = await aiohttp_server(_fake_stripe(seen))
    return str(server.make_url("")).rstrip("/")


async def test_stripe_api_find_invoice_for_payment_intent_queries_invoice_payments(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    seen: list[web.Request] = []
    client = make_client(KEY, await _server(aiohttp_server, seen), session=session)
    assert await find_invoice_for_payment_intent(client, "pi_paying") == "in_42"
    assert await find_invoice_for_payment_intent(client, "pi_alone") is None
    assert seen[0].query["payment[type]"] == "payment_intent"
    assert seen[0].query["payment[payment_intent]"] == "pi_paying"


async def test_stripe_api_errors_surface_as_stripe_errors(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    seen: list[web.Request] = []
    client = make_client("sk_test_wrong", await _server(aiohttp_server, seen), session=session)
    with pytest.raises(stripe.AuthenticationError):
        await find_invoice_for_payment_intent(client, "pi_paying")


async def test_stripe_api_unreachable_server_is_a_connection_error(
    session: aiohttp.ClientSession,
) -> None:
    client = make_client(KEY, "http://127.0.0.1:9", session=session)
    with pytest.raises(stripe.APIConnectionError):
        await find_invoice_for_payment_intent(client, "pi_paying")


def _thin(
    related: dict[str, Any] | None, event_type: str = "v1.customer.subscription.updated"
) -> bytes:
    body: dict[str, Any] = {"id": "evt_thin_1", "object": "v2.core.event", "type": event_type,
                            "created": "2026-01-02T03:04:05.000Z", "livemode": False}  # fmt: skip
    if related is not None:
        body["related_object"] = related
    return orjson.dumps(body)


async def test_stripe_api_fetch_related_object_of_a_thin_event(
    aiohttp_server: ServerFactory, session: aiohttp.ClientSession
) -> None:
    seen: list[web.Request] = []
    client = make_client(KEY, await _server(aiohttp_server, seen), session=session)
    adapter = StripeAdapter(["whsec_x"])
    related = {"id": "sub_7", "type": "subscription", "url": "/v1/subscriptions/sub_7"}
    thin = adapter.parse(_thin(related))
    obj = await fetch_related_object(client, thin)
    assert obj == {"id": "sub_7", "object": "subscription", "status": "active"}
    assert await fetch_related_object(client, thin.payload) == obj  # the payload works too
    assert seen[-1].headers["Stripe-Request-Trigger"] == "event=evt_thin_1"
    unrelated = adapter.parse(_thin(None, "v2.acme.ping"))  # types stripe-python does not know
    assert await fetch_related_object(client, unrelated) is None


async def test_stripe_api_fetch_related_object_refuses_snapshot_events(
    session: aiohttp.ClientSession,
) -> None:
    snapshot = StripeAdapter(["whsec_x"]).parse(
        b'{"id":"evt_1","type":"x","created":1,"data":{"object":{}}}'
    )
    with pytest.raises(ValueError):
        await fetch_related_object(
            make_client(KEY, "http://127.0.0.1:9", session=session), snapshot
        )
