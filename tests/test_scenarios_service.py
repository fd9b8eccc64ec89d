"""Every Stripe scenario, in both API shapes, shuffled and with repeats, through the real
ingress and store: the stored canonical facts are exactly the expected ones."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from tests.adapters.stripe_scenarios import SCENARIOS, SHAPES
from tests.conftest import BridgeFactory, post_stripe


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_scenario_through_service_gives_exact_facts(
    make_bridge: BridgeFactory, name: str, shape: str
) -> None:
    scenario = SCENARIOS[name]
    events = scenario.events(shape)  # type: ignore[arg-type]
    rng = random.Random(f"{name}-{shape}")
    sent = events + rng.sample(events, k=min(3, len(events)))  # some arrive twice
    rng.shuffle(sent)
    bridge, client = await make_bridge("sources: {{stripe: {{correlation_window_s: 0.2}}}}")
    for event in sent:
        status, _ = await post_stripe(client, event)
        assert status == 200
    deadline = time.monotonic() + 10
    while (await bridge.store.counts())["held"]:  # wait out the correlation window
        assert time.monotonic() < deadline, "held PaymentIntent decisions never resolved"
        await asyncio.sleep(0.05)
    stored = await bridge.store.list_events(limit=None)
    facts = {(e.type, e.dedupe_key) for e in stored.items}
    assert facts == scenario.expected(shape)  # type: ignore[arg-type]
    assert len(stored.items) == len(facts)  # no fact stored twice
