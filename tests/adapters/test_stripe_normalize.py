"""Rule-by-rule checks of adapters.stripe_normalize (docs/events.md) beyond the scenarios."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from adapters.base import Link, Normalized
from adapters.stripe import StripeAdapter
from bridge.events import event_id_for
from tests.adapters.scenarios.stripe_factories import (
    BASIC,
    PRO,
    Shape,
    StripeFeed,
    checkout_session,
    invoice,
    payment_intent,
    price,
    refund,
    subscription,
)

ADAPTER = StripeAdapter(["whsec_rules"])


def _run(event: dict[str, Any]) -> Normalized:
    return ADAPTER.normalize(ADAPTER.parse(orjson.dumps(event)))


def _one(shape: Shape, event_type: str, obj: dict[str, Any], prev: Any = None) -> Normalized:
    feed = StripeFeed(shape)
    feed.emit(event_type, obj, prev)
    return _run(feed.events[0])


def _types(result: Normalized) -> list[str]:
    return [e.type for e in result.events]


def _upgrade_check(
    old: list[tuple[dict[str, Any], int]], new: list[tuple[dict[str, Any], int]]
) -> bool:
    feed = StripeFeed("basil")
    before = subscription(feed, "sub_U", "active", old)
    feed.emit(
        "customer.subscription.updated",
        subscription(feed, "sub_U", "active", new),
        {"items": before["items"]},
    )
    return "customer.subscription.upgraded" in _types(_run(feed.events[0]))


@pytest.mark.parametrize(
    ("old", "new", "upgraded"),
    [
        ([(BASIC, 1)], [(BASIC, 3)], True),  # quantity up
        ([(BASIC, 3)], [(BASIC, 2)], False),  # quantity down
        ([(price("price_Y", 9000, "year"), 1)], [(BASIC, 1)], True),  # $90/yr → $120/yr
        ([(BASIC, 1)], [(price("price_Y", 9000, "year"), 1)], False),
        ([(BASIC, 1)], [(BASIC, 1), (PRO, 1)], True),  # an add-on item
        ([(PRO, 1)], [(PRO, 1)], False),  # a renewal (same items, new periods)
        ([(price("price_W", 300, "week"), 1)], [(BASIC, 1)], False),  # $156/yr → $120/yr
    ],
)
def test_stripe_normalize_upgrade_compares_amount_per_year(
    old: list[tuple[dict[str, Any], int]], new: list[tuple[dict[str, Any], int]], upgraded: bool
) -> None:
    assert _upgrade_check(old, new) is upgraded


def test_stripe_normalize_upgrade_unknown_for_tiered_prices() -> None:
    tiered = price("price_T", 0) | {"unit_amount": None, "unit_amount_decimal": None}
    assert _upgrade_check([(BASIC, 1)], [(tiered, 5)]) is False


def test_stripe_normalize_upgrade_from_legacy_plan_previous_attributes() -> None:
    feed = StripeFeed("pre_basil")
    now = subscription(feed, "sub_L", "active", [(PRO, 1)])
    feed.emit("customer.subscription.updated", now, {"plan": {"id": "price_Basic", "amount": 1000}})
    assert "customer.subscription.upgraded" in _types(_run(feed.events[0]))


def test_stripe_normalize_event_fields_follow_the_contract() -> None:
    feed = StripeFeed("basil")
    sub = subscription(feed, "sub_F", "active", [(BASIC, 1)])
    evt = feed.emit("customer.subscription.updated", sub, {"status": "incomplete"})
    result = _run(feed.events[0])
    started = next(e for e in result.events if e.type == "customer.subscription.started")
    assert started.id == event_id_for("customer.subscription.started", "sub:sub_F:started")
    assert (started.source, started.source_event_id, started.created) == ("stripe", evt, feed.now)
    assert (started.object_type, started.object_id) == ("subscription", "sub_F")
    assert started.api_version == "2025-03-31.basil" and started.livemode is False
    assert started.data["object"] == sub
    assert started.data["previous_attributes"] == {"status": "incomplete"}


@pytest.mark.parametrize("shape", ["pre_basil", "basil"])
def test_stripe_normalize_payment_summary_names_the_money_movement(shape: Shape) -> None:
    feed = StripeFeed(shape)
    inv = invoice(
        feed, "in_S", sub_id="sub_S", billing_reason="subscription_cycle", status="paid",
        lines=[(BASIC, 2)], attempt_count=1, payment_intent_id="pi_S",
    )  # fmt: skip
    payment = next(
        e for e in _one(shape, "invoice.paid", inv).events if e.type == "payment.succeeded"
    )
    summary = payment.data["object"]
    assert summary == {
        "kind": "subscription",
        "customer": inv["customer"],
        "amount": 2000,
        "currency": "usd",
        "invoice": "in_S",
        "payment_intent": "pi_S" if shape == "pre_basil" else None,
        "subscription": "sub_S",
        "products": ["prod_Pro"],
        "source_object": inv,
    }
    assert (payment.object_type, payment.object_id) == ("invoice", "in_S")
    assert "previous_attributes" not in payment.data


def test_stripe_normalize_one_off_invoice_is_a_one_time_payment() -> None:
    feed = StripeFeed("basil")
    inv = invoice(
        feed, "in_1", sub_id=None, billing_reason="manual", status="paid", lines=[(BASIC, 1)]
    )
    result = _one("basil", "invoice.paid", inv)
    kinds = [e.data["object"]["kind"] for e in result.events if e.type == "payment.succeeded"]
    assert kinds == ["one_time"]


def test_stripe_normalize_invoice_payment_succeeded_on_open_invoice_is_ignored() -> None:
    feed = StripeFeed("basil")
    inv = invoice(
        feed, "in_2", sub_id=None, billing_reason="manual", status="open", lines=[(BASIC, 1)]
    )
    result = _one("basil", "invoice.payment_succeeded", inv)
    assert result.produces_nothing and result.ignored_reason == "invoice in_2 is open, not paid"


def test_stripe_normalize_basil_invoice_with_expanded_payments_links_its_pi() -> None:
    feed = StripeFeed("basil")
    inv = invoice(
        feed, "in_3", sub_id=None, billing_reason="manual", status="paid", lines=[(BASIC, 1)]
    )
    inv["payments"] = {
        "object": "list",
        "data": [{"payment": {"type": "payment_intent", "payment_intent": "pi_3"}}],
    }
    assert _one("basil", "invoice.paid", inv).links == [Link("pi_3", "in_3")]


def test_stripe_normalize_invoice_payment_paid_is_a_link() -> None:
    obj = {
        "id": "inpay_1",
        "object": "invoice_payment",
        "invoice": "in_4",
        "payment": {"type": "payment_intent", "payment_intent": "pi_4"},
    }
    result = _one("basil", "invoice_payment.paid", obj)
    assert (result.events, result.links) == ([], [Link("pi_4", "in_4")])
    out_of_band = obj | {"payment": {"type": "out_of_band_payment"}}
    assert _one("basil", "invoice_payment.paid", out_of_band).produces_nothing


def test_stripe_normalize_pre_basil_invoice_pi_gives_only_a_link() -> None:
    feed = StripeFeed("pre_basil")
    pi = payment_intent(feed, "pi_5", "succeeded", 1000, invoice_id="in_5")
    result = _one("pre_basil", "payment_intent.succeeded", pi)
    assert (result.events, result.deferred, result.links) == ([], [], [Link("pi_5", "in_5")])


def test_stripe_normalize_shape_falls_back_to_field_presence_without_api_version() -> None:
    legacy = payment_intent(StripeFeed("pre_basil"), "pi_6", "succeeded", 1000, invoice_id=None)
    current = payment_intent(StripeFeed("basil"), "pi_6", "succeeded", 1000)
    feed = StripeFeed("basil")
    feed.emit("payment_intent.succeeded", legacy)
    feed.emit("payment_intent.succeeded", current)
    for event in feed.events:
        event.pop("api_version")
    immediate, held = _run(feed.events[0]), _run(feed.events[1])
    assert _types(immediate) == ["payment_intent.succeeded", "payment.succeeded"]
    assert immediate.deferred == [] and held.events == []
    assert [d.payment_intent for d in held.deferred] == ["pi_6"]


@pytest.mark.parametrize(
    "version", ["2025-03-31.basil", "2025-04-30.basil", "2025-09-30.clover", "2026-01-28.clover"]
)
def test_stripe_normalize_basil_and_later_versions_defer_payment_intents(version: str) -> None:
    feed = StripeFeed("basil", version=version)
    feed.emit("payment_intent.succeeded", payment_intent(feed, "pi_7", "succeeded", 1000))
    assert [d.payment_intent for d in _run(feed.events[0]).deferred] == ["pi_7"]


@pytest.mark.parametrize(("reference", "linked"), [("in_1Clover", True), ("order-4711", False)])
def test_stripe_normalize_clover_order_reference_naming_an_invoice_is_a_link(
    reference: str, linked: bool
) -> None:
    feed = StripeFeed("basil", version="2025-11-17.clover")
    pi = payment_intent(feed, "pi_9c", "succeeded", 1000)
    pi["payment_details"] = {"customer_reference": None, "order_reference": reference}
    feed.emit("payment_intent.succeeded", pi)

    result = _run(feed.events[0])

    if linked:
        assert (result.links, result.deferred) == ([Link("pi_9c", reference)], [])
    else:
        assert (result.links, [d.payment_intent for d in result.deferred]) == ([], ["pi_9c"])


def test_stripe_normalize_checkout_unpaid_waits_but_names_its_standalone_pi() -> None:
    session = checkout_session("cs_1", "payment", "unpaid", amount=500, pi_id="pi_8")
    result = _one("basil", "checkout.session.completed", session)
    assert (result.events, result.standalone_payment_intents) == ([], ["pi_8"])


def test_stripe_normalize_checkout_with_invoice_creation_leaves_payment_to_the_invoice() -> None:
    session = checkout_session(
        "cs_2", "payment", "paid", amount=500, pi_id="pi_9", invoice_id="in_9"
    )
    result = _one("basil", "checkout.session.completed", session)
    assert _types(result) == ["checkout.session.completed"]
    assert (result.links, result.standalone_payment_intents) == ([Link("pi_9", "in_9")], [])


def test_stripe_normalize_free_checkout_is_completed_without_payment() -> None:
    session = checkout_session("cs_3", "payment", "no_payment_required", amount=0)
    assert _types(_one("basil", "checkout.session.completed", session)) == [
        "checkout.session.completed"
    ]


def test_stripe_normalize_checkout_expired() -> None:
    session = checkout_session("cs_4", "payment", "unpaid", amount=500) | {"status": "expired"}
    result = _one("basil", "checkout.session.expired", session)
    assert [(e.type, e.dedupe_key) for e in result.events] == [
        ("checkout.session.expired", "checkout:cs_4:expired")
    ]


@pytest.mark.parametrize(
    "event_type", ["refund.created", "refund.updated", "charge.refund.updated"]
)
def test_stripe_normalize_pending_or_failed_refund_is_not_a_success(event_type: str) -> None:
    for status in ("pending", "failed", "canceled"):
        result = _one("basil", event_type, refund("re_1", "pi_1", 100, status=status))
        assert result.produces_nothing
    assert _types(_one("basil", event_type, refund("re_1", "pi_1", 100))) == ["refund.succeeded"]


def test_stripe_normalize_modern_charge_refunded_defers_to_refund_events() -> None:
    charge = {"id": "ch_1", "object": "charge", "amount_refunded": 100, "refunded": True}
    result = _one("basil", "charge.refunded", charge)
    assert result.produces_nothing and result.ignored_reason is not None


def test_stripe_normalize_invoice_failure_keys_carry_the_attempt() -> None:
    feed = StripeFeed("pre_basil")
    keys = set()
    for attempt in (1, 2, 2):
        inv = invoice(
            feed, "in_F", sub_id="sub_F", billing_reason="subscription_cycle", status="open",
            lines=[(BASIC, 1)], attempt_count=attempt, payment_intent_id="pi_F",
        )  # fmt: skip
        keys |= {e.dedupe_key for e in _one("pre_basil", "invoice.payment_failed", inv).events}
    assert keys == {
        "invoice:in_F:failed:1", "invoice:in_F:failed:2",
        "invoice:in_F:renew_failed:1", "invoice:in_F:renew_failed:2",
        "payment_failed:in_F:1", "payment_failed:in_F:2",
    }  # fmt: skip
