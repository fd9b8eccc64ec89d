"""Ingress: the statuses the README promises, and that nothing is stored for a rejected request."""

from __future__ import annotations

import secrets
import time
from typing import Any

import orjson

from tests.conftest import BridgeFactory, post_stripe, stripe_event, stripe_headers

SUB = {
    "id": "sub_ingress1",
    "object": "subscription",
    "customer": "cus_1",
    "status": "active",
    "items": {"object": "list", "data": []},
    "cancel_at_period_end": False,
}


async def _counts(bridge: Any) -> dict[str, int]:
    counts: dict[str, int] = await bridge.store.counts()
    return counts


async def test_ingress_valid_event_is_stored_and_acked(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge()
    status, body = await post_stripe(client, stripe_event("customer.subscription.created", SUB))
    assert status == 200
    assert body["received"] is True and body["duplicate"] is False
    page = await bridge.store.list_events(limit=None)
    assert {e.type for e in page.items} == {
        "customer.subscription.created",
        "customer.subscription.started",
    }
    assert sorted(body["events"]) == sorted(e.id for e in page.items)


async def test_ingress_replay_adds_nothing(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge()
    event = stripe_event("customer.subscription.created", SUB)
    await post_stripe(client, event)
    before = await _counts(bridge)
    status, body = await post_stripe(client, event)
    assert status == 200 and body["duplicate"] is True and body["events"] == []
    assert await _counts(bridge) == before


async def test_ingress_same_fact_from_two_provider_events_is_one_event(
    make_bridge: BridgeFactory,
) -> None:
    bridge, client = await make_bridge()
    await post_stripe(client, stripe_event("customer.subscription.created", SUB))
    await post_stripe(client, stripe_event("customer.subscription.created", SUB))
    counts = await _counts(bridge)
    assert counts["inbox"] == 2
    assert counts["events"] == 2  # created + started, once each


async def test_ingress_bad_signature_is_400_and_stores_nothing(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge()
    body = orjson.dumps(stripe_event("customer.subscription.created", SUB))
    for headers in (
        stripe_headers(body, secret="whsec_wrong_secret_000000000"),
        stripe_headers(body, ts=int(time.time()) - 3600),  # stale
        stripe_headers(body, ts=int(time.time()) + 3600),  # from the future
        stripe_headers(body + b" "),  # signature of another body
        {"Stripe-Signature": "t=123,v0=abc"},
        {},
    ):
        resp = await client.post("/webhooks/stripe", data=body, headers=headers)
        assert resp.status == 400, headers
        err = (await resp.json())["error"]
        assert err["type"] == "signature_verification_failed" and err["message"]
    assert (await _counts(bridge))["inbox"] == 0


async def test_ingress_malformed_bodies_are_400(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge()
    for body in (
        b"{not json",
        b"[1, 2]",
        b'{"type": "invoice.paid", "data": {"object": {}}}',
        b'{"id": "evt_1", "data": {"object": {}}}',
        b'{"id": "evt_1", "type": 5, "created": 1, "data": {"object": {}}}',
        b"\xff\xfe\x00garbage",
    ):
        status, data = await post_stripe(client, body)
        assert status == 400, body
        assert data["error"]["type"] == "invalid_payload"
    assert (await _counts(bridge))["inbox"] == 0


async def test_ingress_body_over_limit_is_413(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge("server: {{max_body_bytes: 2048}}")
    event = stripe_event("customer.subscription.created", {**SUB, "metadata": {"pad": "x" * 4096}})
    status, data = await post_stripe(client, event)
    assert status == 413
    assert data["error"]["type"] == "payload_too_large"
    assert (await _counts(bridge))["inbox"] == 0


async def test_ingress_unknown_type_is_200_recorded_as_ignored(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge()
    event = stripe_event("balance.available", {"object": "balance"})
    status, body = await post_stripe(client, event)
    assert status == 200 and body["events"] == []
    counts = await _counts(bridge)
    assert counts["inbox"] == 1 and counts["ignored"] == 1 and counts["events"] == 0
    metrics = await (await client.get("/metrics")).text()
    assert 'paybridge_inbound_requests_total{outcome="ignored",source="stripe"} 1.0' in metrics


async def test_ingress_store_down_is_503_then_recovers(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge()
    worker = bridge.store._worker  # type: ignore[attr-defined]
    # A real write failure: the database is full (it may not grow by a single page, and the
    # event below needs several).
    await worker.call(lambda conn: conn.execute("PRAGMA max_page_count = 1"))
    pad = secrets.token_urlsafe(30_000)  # random: the inbox's compression cannot shrink it
    event = stripe_event("customer.subscription.created", {**SUB, "metadata": {"p": pad}})
    status, data = await post_stripe(client, event)
    assert status == 503
    assert data["error"]["type"] == "store_unavailable"
    await worker.call(lambda conn: conn.execute("PRAGMA max_page_count = 1073741823"))
    assert (await _counts(bridge))["inbox"] == 0
    status, data = await post_stripe(client, event)  # the provider's retry
    assert status == 200 and data["duplicate"] is False


async def test_ingress_unconfigured_source_is_404(make_bridge: BridgeFactory) -> None:
    _, client = await make_bridge()
    resp = await client.post("/webhooks/payment-kit", data=b"{}")
    assert resp.status == 404


async def test_healthz_and_openevent(make_bridge: BridgeFactory) -> None:
    _, client = await make_bridge()
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


async def test_events_survive_a_restart(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge()
    await post_stripe(client, stripe_event("customer.subscription.created", SUB))
    ids = {e.id for e in (await bridge.store.list_events(limit=None)).items}
    await client.close()  # runs the app's cleanup: the bridge stops, the store closes
    bridge2, client2 = await make_bridge()
    assert {e.id for e in (await bridge2.store.list_events(limit=None)).items} == ids
    await client2.close()
