"""`POST /api/webhook-endpoints/{id}/recover`: after a receiver outage, resend what failed
since a time, counted first (dry run), through the running service to a real receiver."""

from __future__ import annotations

import time
from typing import Any

from aiohttp.test_utils import TestClient

from bridge.service import Bridge
from tests.conftest import BridgeFactory, admin_headers, post_stripe, stripe_event
from tests.receivers import Receiver, always, ok, running, subscription, wait_until

STARTED = "customer.subscription.started"


async def _dead_after_outage(
    make_bridge: BridgeFactory, rcv: Receiver, n: int
) -> tuple[Bridge, TestClient[Any, Any], str]:
    """An endpoint whose receiver failed every attempt of ``n`` events (schedule of 3 retries)."""
    bridge, client = await make_bridge()
    resp = await client.post(
        "/api/webhook-endpoints",
        json={"url": rcv.url(), "enabled_events": [STARTED]},
        headers=admin_headers(),
    )
    ep: str = (await resp.json())["id"]
    for i in range(n):
        event = stripe_event("customer.subscription.created", subscription(f"sub_rec{i}"))
        assert (await post_stripe(client, event))[0] == 200

    async def all_dead() -> bool:
        return (await bridge.store.counts())["dead"] == n

    await wait_until(all_dead, f"{n} dead deliveries")
    return bridge, client, ep


async def test_api_recover_counts_then_resends_dead_deliveries(
    make_bridge: BridgeFactory,
) -> None:
    async with running(always(503)) as (rcv,):
        bridge, client, ep = await _dead_after_outage(make_bridge, rcv, 2)
        url = f"/api/webhook-endpoints/{ep}/recover"
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
        resp = await client.post(
            url, json={"since": since, "dry_run": True}, headers=admin_headers()
        )
        counted = await resp.json()
        assert resp.status == 200, counted
        assert counted["object"] == "recovery" and counted["dry_run"] is True
        assert (counted["dead"], counted["failing"], counted["count"]) == (2, 0, 2)
        (stats,) = [s for s in await bridge.store.delivery_stats() if s.subscriber_id == ep]
        assert stats.dead == 2
        assert counted["endpoint_id"] == ep and counted["endpoint_status"] == "enabled"
        before = len(rcv.requests)

        rcv.script = ok()  # the receiver is back
        resp = await client.post(url, json={"since": "2h"}, headers=admin_headers())
        done = await resp.json()
        assert resp.status == 200 and done["count"] == 2 and done["dry_run"] is False
        await rcv.wait_count(before + 2)

        async def delivered() -> bool:
            page = await bridge.store.list_deliveries(subscriber_id=ep, status="delivered")
            return len(page.items) == 2

        await wait_until(delivered, "both resent deliveries delivered")
        (stats,) = [s for s in await bridge.store.delivery_stats() if s.subscriber_id == ep]
        assert stats.dead == 0  # resolved: the recovered copies were delivered
        again = await client.post(url, json={"since": "2h"}, headers=admin_headers())
        assert (await again.json())["count"] == 0  # nothing failed since: nothing resent


async def test_api_recover_refuses_bad_requests(make_bridge: BridgeFactory) -> None:
    _bridge, client = await make_bridge()
    resp = await client.post(
        "/api/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/h", "enabled_events": ["*"]},
        headers=admin_headers(),
    )
    url = f"/api/webhook-endpoints/{(await resp.json())['id']}/recover"
    for body in (
        {},
        {"since": "yesterday"},
        {"since": True},
        {"since": "2h", "dry_run": "yes"},
        {"since": "2h", "extra": 1},
        {"since": time.time() + 3600},
    ):
        resp = await client.post(url, json=body, headers=admin_headers())
        assert resp.status == 400, body
        assert (await resp.json())["error"]["type"] == "invalid_request"
    resp = await client.post(url, data=b"[1]", headers=admin_headers())
    assert resp.status == 400
    resp = await client.post(
        "/api/webhook-endpoints/we_nope/recover", json={"since": 0}, headers=admin_headers()
    )
    assert resp.status == 404
    assert (await client.post(url, json={"since": 0})).status == 401
    resp = await client.post(url, json={"since": 0}, headers=admin_headers())
    assert resp.status == 200 and (await resp.json())["count"] == 0
