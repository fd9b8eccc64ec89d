"""Every lifecycle scenario, in both API shapes (basil with and without
``invoice_payment.paid``), yields exactly its expected facts, whatever the order and however
often Stripe repeats its events: one invoice payment is one ``payment.succeeded``, one declined
attempt one ``payment.failed``."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import Normalized
from adapters.stripe import StripeAdapter
from tests.adapters.stripe_scenarios import SCENARIOS, STREAM_IDS, STREAMS, Fact, Stream, fold

ADAPTER = StripeAdapter(["whsec_scenarios"])


def _normalize(events: list[dict[str, Any]]) -> list[Normalized]:
    """Each event goes through the real parse (raw bytes) and normalize."""
    return [ADAPTER.normalize(ADAPTER.parse(orjson.dumps(e))) for e in events]


def _facts(events: list[dict[str, Any]]) -> set[Fact]:
    return fold(_normalize(events))


@pytest.mark.parametrize("stream", STREAMS, ids=STREAM_IDS)
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_stripe_scenario_in_stripe_order_gives_expected_facts(name: str, stream: Stream) -> None:
    scenario = SCENARIOS[name]
    assert _facts(scenario.events(*stream)) == scenario.expected(*stream)


def _shape_free(facts: set[Fact]) -> list[str]:
    """Facts keyed by a provider event id (``stripe:evt_…``) reduced to their type: basil sends
    extra events (invoice_payment.paid), so its event ids are numbered differently."""
    return sorted(t if k.startswith("stripe:") else f"{t} {k}" for t, k in facts)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_stripe_scenario_facts_are_the_same_in_both_shapes(name: str) -> None:
    scenario = SCENARIOS[name]
    expected = [_shape_free(scenario.expected(*stream)) for stream in STREAMS]
    facts = [_shape_free(_facts(scenario.events(*stream))) for stream in STREAMS]
    assert expected[0] == expected[1] == expected[2]
    assert facts[0] == facts[1] == facts[2]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_stripe_scenario_shapes_really_differ(name: str) -> None:
    pre, basil = SCENARIOS[name].events("pre_basil"), SCENARIOS[name].events("basil")
    assert {e["api_version"] for e in pre}.isdisjoint({e["api_version"] for e in basil})
    assert all(e["api_version"] >= "2025-03-31" for e in basil)
    assert all(e["api_version"] < "2025-03-31" for e in pre)


@pytest.mark.parametrize("stream", STREAMS, ids=STREAM_IDS)
@pytest.mark.parametrize("name", list(SCENARIOS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_stripe_scenario_any_order_and_repeats_give_same_facts(
    name: str, stream: Stream, data: st.DataObject
) -> None:
    scenario = SCENARIOS[name]
    events = scenario.events(*stream)
    results = _normalize(events)  # normalize is pure: reuse one result per event
    picks = data.draw(st.lists(st.integers(0, len(events) - 1), max_size=2 * len(events)))
    order = data.draw(st.permutations(list(range(len(events))) + picks))
    assert fold([results[i] for i in order]) == scenario.expected(*stream)


def test_stripe_scenarios_cover_the_issue_list() -> None:
    wanted = {
        "subscription_paid_at_once", "incomplete_then_active_after_3ds", "trial_that_converts",
        "trial_canceled_before_paying", "renewal_paid", "renewal_failed_then_paid", "upgrade",
        "downgrade", "scheduled_cancellation_undone", "paused_and_resumed", "canceled",
        "checkout_one_time_card", "checkout_delayed_succeeds", "checkout_delayed_fails",
        "payment_intent_without_checkout", "full_refund", "partial_refunds",
        "zero_dollar_subscription",
    }  # fmt: skip
    assert wanted <= set(SCENARIOS)


def test_stripe_scenario_basil_payment_intents_are_deferred_not_emitted() -> None:
    events = SCENARIOS["payment_intent_without_checkout"].events("basil")
    succeeded = next(e for e in events if e["type"] == "payment_intent.succeeded")
    result = ADAPTER.normalize(ADAPTER.parse(orjson.dumps(succeeded)))
    assert result.events == []
    assert [d.payment_intent for d in result.deferred] == ["pi_O"]
    assert [e.type for e in result.deferred[0].events] == [
        "payment_intent.succeeded",
        "payment.succeeded",
    ]
