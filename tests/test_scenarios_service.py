"""Every Stripe scenario, in both API shapes (basil with and without ``invoice_payment.paid``),
shuffled and with repeats, through the real ingress and store with no API key: the stored
canonical facts are exactly the expected ones."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from bridge.service import Bridge
from tests.adapters.stripe_scenarios import SCENARIOS, STREAM_IDS, STREAMS, Stream
from tests.conftest import make_config, post_stripe
from tests.receivers import OffsetClock, nothing_held, wait_until


@pytest.mark.parametrize("stream", STREAMS, ids=STREAM_IDS)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_scenario_through_service_gives_exact_facts(
    tmp_path: Path, aiohttp_client: AiohttpClient, name: str, stream: Stream
) -> None:
    scenario = SCENARIOS[name]
    events = scenario.events(*stream)
    rng = random.Random(f"{name}-{stream}")
    sent = events + rng.sample(events, k=min(3, len(events)))  # some arrive twice
    rng.shuffle(sent)
    # The correlation window runs on the bridge's clock, not the wall's: all events arrive
    # inside it however slow the machine is, then the clock jumps past it and the held
    # PaymentIntent decisions are made.
    clock = OffsetClock()
    bridge = Bridge(
        make_config(tmp_path, "sources: {{stripe: {{correlation_window_s: 30}}}}"), clock=clock
    )
    client = await aiohttp_client(bridge.web_app())
    for event in sent:
        status, _ = await post_stripe(client, event)
        assert status == 200
    clock.offset = 60.0
    # the correlation loop's next round decides them
    await wait_until(lambda: nothing_held(bridge.store), "held PaymentIntents never decided")
    stored = await bridge.store.list_events(limit=None)
    facts = {(e.type, e.dedupe_key) for e in stored.items}
    assert facts == scenario.expected(*stream)
    assert len(stored.items) == len(facts)  # no fact stored twice
