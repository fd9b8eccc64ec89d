"""event_refs: the customer, subscription and invoice an event is about."""

from __future__ import annotations

from typing import Any

from bridge.events import Event, EventRefs, event_refs


def _event(obj: Any, object_type: str | None = None, object_id: str | None = None) -> Event:
    return Event.make(
        type="invoice.paid",
        dedupe_key="k",
        source="stripe",
        source_event_id="evt_1",
        created=0,
        data_object=obj,
        object_type=object_type,
        object_id=object_id,
    )


def test_stripe_subscription() -> None:
    ev = _event({"id": "sub_1", "customer": "cus_1"}, "subscription", "sub_1")
    assert event_refs(ev) == EventRefs("cus_1", "sub_1", None)


def test_stripe_basil_invoice_names_its_subscription_under_parent() -> None:
    obj = {
        "id": "in_1",
        "customer": {"id": "cus_1", "object": "customer"},  # expanded
        "parent": {"subscription_details": {"subscription": "sub_1"}},
    }
    assert event_refs(_event(obj, "invoice", "in_1")) == EventRefs("cus_1", "sub_1", "in_1")


def test_payment_summary_and_payment_kit_fields() -> None:
    summary = {"customer": "cus_1", "invoice": "in_1", "subscription": None}
    assert event_refs(_event(summary, "payment_intent", "pi_1")) == EventRefs("cus_1", None, "in_1")
    pk = {"customer_id": "cus_2", "subscription_id": "sub_2", "invoice_id": "in_2"}
    assert event_refs(_event(pk, "payment", "p_1")) == EventRefs("cus_2", "sub_2", "in_2")


def test_customer_object_and_odd_shapes() -> None:
    assert event_refs(_event({"id": "cus_9"}, "customer", "cus_9")).customer == "cus_9"
    odd = {"customer": 5, "subscription": {"no": "id"}, "invoice": "", "parent": "x"}
    assert event_refs(_event(odd)) == EventRefs(None, None, None)
    assert event_refs(_event({"customer": "c" * 999})).customer == "c" * 255
