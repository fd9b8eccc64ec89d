"""A delivery leased at ingest that waits in the local queue until its lease could no longer
cover a send is given back unsent (its recorded first attempt says so) and delivered later."""

from __future__ import annotations

import asyncio

from aiohttp import web

from tests.conftest import BridgeFactory, post_stripe, stripe_event
from tests.receivers import ManualClock, running, subscription, wait_until

YAML = """
store: {{lease_s: 1}}
delivery: {{max_in_flight_per_endpoint: 1, timeout_s: 1, schedule_s: [0.2, 0.2, 0.2]}}
endpoints:
  - id: we_slow
    url: "{url}"
    enabled_events: ["customer.subscription.created"]
    secret: whsec_ZGV2LWJpbGxpbmctc2VjcmV0LWNoYW5nZS1tZQ==
"""


async def test_dispatch_delivery_queued_past_its_lease_is_given_back_then_delivered(
    make_bridge: BridgeFactory,
) -> None:
    release = asyncio.Event()

    async def first_held(i: int, _req: web.Request) -> web.StreamResponse:
        if i == 0:  # holds the endpoint's only slot while the lease of the next one runs down
            await release.wait()
        return web.Response(text="ok")

    clock = ManualClock()
    async with running(first_held) as (rcv,):
        bridge, client = await make_bridge(YAML, url=rcv.url(), clock=clock)
        for i in range(2):
            sub = subscription(f"sub_unsent{i}")
            status, _ = await post_stripe(
                client, stripe_event("customer.subscription.created", sub)
            )
            assert status == 200
        await rcv.wait_count(1)  # the first is being sent, the second waits in the queue
        # the lease is max(1, timeout_s + 5, handler_timeout_s + 5) = 10 s: let it run down
        # until fewer than timeout_s + 2 seconds of the queued delivery's lease are left
        clock.advance(bridge.lease_s - 2.5)
        release.set()

        async def both_delivered() -> bool:
            clock.advance(0.05)  # the poll loop claims the given-back delivery on its next round
            page = await bridge.store.list_attempts(limit=100)
            return sum(a.status == "succeeded" for a in page.items) == 2

        await wait_until(both_delivered, "both deliveries")
        page = await bridge.store.list_attempts(limit=100)
        errors = [a.error for a in page.items if a.status == "failed"]
        assert errors == ["not sent: queued past its lease"]
        assert len(rcv.requests) == 2  # the unsent one was not sent twice


async def test_dispatch_queued_delivery_to_an_endpoint_disabled_meanwhile_is_not_sent(
    make_bridge: BridgeFactory,
) -> None:
    release = asyncio.Event()

    async def gone(_i: int, _req: web.Request) -> web.StreamResponse:
        await release.wait()  # until the second delivery waits in the queue
        return web.Response(status=410)

    async with running(gone) as (rcv,):
        bridge, client = await make_bridge(YAML, url=rcv.url())
        for i in range(2):
            sub = subscription(f"sub_gone{i}")
            status, _ = await post_stripe(
                client, stripe_event("customer.subscription.created", sub)
            )
            assert status == 200
        await rcv.wait_count(1)
        release.set()

        async def both_closed() -> bool:
            page = await bridge.store.list_attempts(limit=100)
            return sum(a.status == "failed" for a in page.items) == 2

        await wait_until(both_closed, "the 410 and the unsent attempt")
        page = await bridge.store.list_attempts(limit=100)
        assert sorted(((a.status_code, a.error) for a in page.items), key=str) == [
            (410, None),
            (None, "not sent: endpoint disabled"),
        ]
        assert len(rcv.requests) == 1
        endpoint = await bridge.store.get_subscriber("we_slow")
        assert endpoint is not None and endpoint.status == "disabled"
