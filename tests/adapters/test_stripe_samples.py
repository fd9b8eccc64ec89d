"""adapters.stripe_samples: every sample is a well-formed event that means its type."""

from __future__ import annotations

import orjson
import pytest

from adapters.stripe import StripeAdapter
from adapters.stripe_samples import SAMPLE_TYPES, sample_event

ADAPTER = StripeAdapter(["whsec_samples"])
VERSIONS = ["2025-03-31.basil", "2025-09-30.clover", "2024-06-20"]
# What `paybridge trigger TYPE` must produce: canonical types emitted at once or deferred.
PAID = {"invoice.paid", "customer.subscription.renewed", "payment.succeeded"}
MEANS = {
    "customer.subscription.created": {
        "customer.subscription.created",
        "customer.subscription.started",
    },
    "customer.subscription.updated": {"customer.subscription.updated"},
    "customer.subscription.deleted": {"customer.subscription.deleted"},
    "invoice.paid": PAID,
    "invoice.payment_succeeded": PAID,
    "payment_intent.succeeded": {"payment_intent.succeeded", "payment.succeeded"},
    "checkout.session.completed": {"checkout.session.completed", "payment.succeeded"},
    "refund.created": {"refund.succeeded"},
}  # fmt: skip


def test_stripe_samples_cover_the_cli_types() -> None:
    required = {
        "customer.subscription.created", "customer.subscription.updated", "invoice.paid",
        "invoice.payment_succeeded", "payment_intent.succeeded", "checkout.session.completed",
        "charge.refunded", "refund.created",
    }  # fmt: skip
    assert required <= set(SAMPLE_TYPES)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("event_type", SAMPLE_TYPES)
def test_stripe_sample_parses_and_means_its_type(event_type: str, version: str) -> None:
    event = ADAPTER.parse(orjson.dumps(sample_event(event_type, api_version=version)))
    assert (event.type, event.api_version) == (event_type, version)
    result = ADAPTER.normalize(event)
    produced = {e.type for e in result.events} | {e.type for d in result.deferred for e in d.events}
    assert produced == MEANS.get(event_type, set())


def test_stripe_sample_ids_are_fresh_per_call() -> None:
    first, second = sample_event("invoice.paid"), sample_event("invoice.paid")
    assert first["id"] != second["id"]
    assert first["data"]["object"]["id"] != second["data"]["object"]["id"]
    assert first["id"].startswith("evt_") and first["data"]["object"]["id"].startswith("in_")


def test_stripe_sample_overrides_replace_object_fields() -> None:
    event = sample_event("customer.subscription.created", status="trialing", trial_start=5)
    assert event["data"]["object"]["status"] == "trialing"
    facts = {e.dedupe_key for e in ADAPTER.normalize(ADAPTER.parse(orjson.dumps(event))).events}
    assert f"sub:{event['data']['object']['id']}:trial_start:5" in facts


def test_stripe_sample_refuses_unknown_types() -> None:
    with pytest.raises(ValueError, match="no sample"):
        sample_event("customer.updated")
