"""/metrics as an operator's Prometheus scrapes it: per subscriber, the age of the oldest
pending delivery, pending and dead deliveries; per endpoint, enabled and failing; whether the
store answered. Driven by real receivers and the bridge's clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpClient

from bridge.service import Bridge
from tests.conftest import make_config, post_stripe, stripe_event
from tests.receivers import ManualClock, always, running, subscription, wait_until

SECRET = "whsec_ZGV2LWJpbGxpbmctc2VjcmV0LWNoYW5nZS1tZQ=="
STARTED = "customer.subscription.started"


async def _scrape(client: TestClient[Any, Any]) -> dict[tuple[str, tuple[str, ...]], float]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    out: dict[tuple[str, tuple[str, ...]], float] = {}
    for family in text_string_to_metric_families(await resp.text()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.values())))] = sample.value
    return out


def _yaml(failing_url: str, gone_url: str) -> str:
    return "".join(
        f"  - id: {ep}\n    url: {url}\n    enabled_events: [{STARTED}]\n    secret: {SECRET}\n"
        for ep, url in (("we_failing", failing_url), ("we_gone", gone_url))
    )


async def test_metrics_owed_deliveries_and_endpoint_state(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    clock = ManualClock()
    async with running(always(500), always(410)) as (failing, gone):
        extra = "delivery:\n  schedule_s: [600, 600]\nendpoints:\n" + _yaml(
            failing.url(), gone.url()
        )
        bridge = Bridge(make_config(tmp_path, extra), clock=clock)
        client = await aiohttp_client(bridge.web_app())
        before = await _scrape(client)
        assert before[("paybridge_store_up", ())] == 1
        assert before[("paybridge_endpoint_enabled", ("we_gone",))] == 1
        assert (
            before[("paybridge_oldest_pending_delivery_age_seconds", ("endpoint", "we_failing"))]
            == 0
        )
        event = stripe_event("customer.subscription.created", subscription("sub_metrics"))
        assert (await post_stripe(client, event))[0] == 200

        async def both_answered() -> bool:
            stats = {s.subscriber_id: s for s in await bridge.store.delivery_stats()}
            return stats["we_gone"].dead == 1 and stats["we_failing"].failing

        await wait_until(both_answered, "a 500 and a 410")
        clock.advance(120)  # the failing endpoint's delivery waits for its retry in 10 min
        seen = await _scrape(client)
    age = seen[("paybridge_oldest_pending_delivery_age_seconds", ("endpoint", "we_failing"))]
    assert age == 120
    assert seen[("paybridge_pending_deliveries", ("endpoint", "we_failing"))] == 1
    assert seen[("paybridge_dead_deliveries", ("endpoint", "we_gone"))] == 1
    assert seen[("paybridge_dead_deliveries", ("endpoint", "we_failing"))] == 0
    assert seen[("paybridge_endpoint_enabled", ("we_gone",))] == 0  # 410 disabled it
    assert seen[("paybridge_endpoint_enabled", ("we_failing",))] == 1
    assert seen[("paybridge_endpoint_failing", ("we_failing",))] == 1
    await bridge.store.close()  # the database goes away: the scrape still answers
    down = await _scrape(client)
    assert down[("paybridge_store_up", ())] == 0
