"""The deferred Stripe API steps of the running service, against a local Stripe-compatible
server: the basil PaymentIntent → invoice look-up, and `paybridge reconcile`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.stripe_samples import sample_event
from bridge.reconcile import reconcile
from tests.conftest import BridgeFactory, post_stripe
from tests.receivers import nothing_held, wait_until

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
KEY = "sk_test_local_lookup"


def _fake_stripe(events: list[dict[str, Any]], paying: dict[str, str]) -> web.Application:
    async def invoice_payments(request: web.Request) -> web.Response:
        assert request.headers.get("Authorization") == f"Bearer {KEY}"
        pi = request.query.get("payment[payment_intent]", "")
        data = []
        if pi in paying:
            data = [{"id": "inpay_1", "object": "invoice_payment", "invoice": paying[pi],
                     "payment": {"type": "payment_intent", "payment_intent": pi}}]  # fmt: skip
        return web.json_response(
            {"object": "list", "data": data, "has_more": False, "url": "/v1/invoice_payments"}
        )

    async def list_events(request: web.Request) -> web.Response:
        gte = int(request.query["created[gte]"])
        data = [e for e in events if e["created"] >= gte]
        return web.json_response(
            {"object": "list", "data": data, "has_more": False, "url": "/v1/events"}
        )

    app = web.Application()
    app.router.add_get("/v1/invoice_payments", invoice_payments)
    app.router.add_get("/v1/events", list_events)
    return app


async def _wait_decided(bridge: Any) -> None:
    await wait_until(lambda: nothing_held(bridge.store), "held PaymentIntents never decided")


async def test_basil_payment_intent_paying_an_invoice_is_dropped_after_lookup(
    make_bridge: BridgeFactory, aiohttp_server: ServerFactory
) -> None:
    invoice_pi = sample_event("payment_intent.succeeded")
    one_time_pi = sample_event("payment_intent.succeeded")
    paying = {invoice_pi["data"]["object"]["id"]: "in_from_lookup"}
    server = await aiohttp_server(_fake_stripe([], paying))
    bridge, client = await make_bridge(
        "sources: {{stripe: {{correlation_window_s: 0.1, api_key: {key}, api_base: '{base}'}}}}",
        key=KEY,
        base=str(server.make_url("")).rstrip("/"),
    )
    for event in (invoice_pi, one_time_pi):
        status, body = await post_stripe(client, event)
        assert status == 200 and body["events"] == []  # held: basil PIs name no invoice
    await _wait_decided(bridge)
    facts = {(e.type, e.object_id) for e in (await bridge.store.list_events(limit=None)).items}
    one_time = one_time_pi["data"]["object"]["id"]
    assert ("payment_intent.succeeded", one_time) in facts
    assert not any(oid == invoice_pi["data"]["object"]["id"] for _, oid in facts)


async def test_reconcile_backfills_missed_events_once(
    make_bridge: BridgeFactory, aiohttp_server: ServerFactory
) -> None:
    missed = [sample_event("customer.subscription.created", api_version="2024-06-20")
              for _ in range(3)]  # fmt: skip
    server = await aiohttp_server(_fake_stripe(missed, {}))
    bridge, client = await make_bridge(
        "sources: {{stripe: {{api_key: {key}, api_base: '{base}'}}}}",
        key=KEY,
        base=str(server.make_url("")).rstrip("/"),
    )
    await post_stripe(client, missed[0])  # this one did arrive
    url = str(client.make_url("/webhooks/stripe"))
    first = await reconcile(bridge.config, since_s=3600, to=url)
    assert (first.listed, first.new, first.duplicates, first.failed) == (3, 2, 1, 0)
    again = await reconcile(bridge.config, since_s=3600, to=url)
    assert (again.new, again.duplicates) == (0, 3)
    types = [e.type for e in (await bridge.store.list_events(limit=None)).items]
    assert types.count("customer.subscription.created") == 3


def _thin_event(event_id: str, sub_id: str) -> bytes:
    import orjson

    return orjson.dumps(
        {
            "id": event_id,
            "object": "v2.core.event",
            "type": "v1.customer.subscription.created",
            "created": "2026-01-02T03:04:05.000Z",
            "livemode": False,
            "related_object": {
                "id": sub_id,
                "type": "subscription",
                "url": f"/v1/subscriptions/{sub_id}",
            },
        }
    )


async def test_thin_event_is_fetched_durably_and_normalized(
    make_bridge: BridgeFactory, aiohttp_server: ServerFactory
) -> None:
    fetched: list[str] = []
    app = _fake_stripe([], {})

    async def subscription(request: web.Request) -> web.Response:
        fetched.append(request.match_info["id"])
        if request.match_info["id"] == "sub_gone":
            return web.json_response(
                {"error": {"type": "invalid_request_error", "message": "No such subscription"}},
                status=404,
            )
        return web.json_response(
            {
                "id": request.match_info["id"],
                "object": "subscription",
                "status": "active",
                "customer": "cus_thin",
            }
        )

    app.router.add_get("/v1/subscriptions/{id}", subscription)
    server = await aiohttp_server(app)
    bridge, client = await make_bridge(
        "sources: {{stripe: {{api_key: {key}, api_base: '{base}'}}}}",
        key=KEY,
        base=str(server.make_url("")).rstrip("/"),
    )
    for body in (_thin_event("evt_thin_a", "sub_thin"), _thin_event("evt_thin_b", "sub_gone")):
        status, data = await post_stripe(client, body)
        assert status == 200 and data["events"] == []  # acked now, fetched after

    async def all_fetched() -> bool:
        return not (await bridge.store.counts())["pending_fetch"]

    await wait_until(all_fetched, "thin events never fetched")
    facts = {(e.type, e.dedupe_key) for e in (await bridge.store.list_events(limit=None)).items}
    assert facts == {
        ("customer.subscription.created", "sub:sub_thin:created"),
        ("customer.subscription.started", "sub:sub_thin:started"),
    }
    assert sorted(set(fetched)) == ["sub_gone", "sub_thin"]
    status, data = await post_stripe(client, _thin_event("evt_thin_a", "sub_thin"))
    assert data["duplicate"] is True


async def test_thin_event_without_api_key_is_stored_and_ignored(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge()
    status, data = await post_stripe(client, _thin_event("evt_thin_c", "sub_x"))
    assert status == 200 and data["events"] == []
    counts = await bridge.store.counts()
    assert counts["ignored"] == 1 and counts["pending_fetch"] == 0
