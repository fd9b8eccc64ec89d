"""Realistic whole Stripe events for ``paybridge trigger TYPE`` (like ``stripe trigger``).

Every call gives fresh ids (``evt_``, ``sub_``, ``in_``, ``pi_``, ``ch_``, ``re_``, ``cs_`` with a
random suffix), so each trigger is a new real-world fact. Objects follow the shape of
``api_version``: basil and later (default) or the pre-basil shape (``invoice.subscription``,
``invoice.payment_intent``, ``payment_intent.invoice``, ``subscription.current_period_*``).
"""

from __future__ import annotations

import secrets
import string
import time
from collections.abc import Callable
from typing import Any

from adapters.stripe_shapes import is_basil_version

__all__ = ["DEFAULT_SAMPLE_API_VERSION", "SAMPLE_TYPES", "sample_event"]

DEFAULT_SAMPLE_API_VERSION = "2025-03-31.basil"
_ALPHABET = string.ascii_letters + string.digits
_MONTH_S = 30 * 86400
Obj = dict[str, Any]


def _id(prefix: str) -> str:
    return f"{prefix}_1{''.join(secrets.choice(_ALPHABET) for _ in range(23))}"


class _Ids:
    """One coherent set of ids for one sample (the invoice names the subscription, …)."""

    def __init__(self) -> None:
        self.customer, self.sub, self.item = _id("cus"), _id("sub"), _id("si")
        self.invoice, self.pi, self.charge = _id("in"), _id("pi"), _id("ch")
        self.refund, self.session = _id("re"), f"cs_test_{_id('a')[2:]}"


def _price() -> Obj:
    return {
        "id": "price_1PaybridgeSampleMonthly",
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "currency": "usd",
        "product": "prod_PaybridgeSample",
        "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
        "type": "recurring",
        "unit_amount": 2000,
        "unit_amount_decimal": "2000",
    }


def _subscription(ids: _Ids, basil: bool, now: int) -> Obj:
    item: Obj = {"id": ids.item, "object": "subscription_item", "price": _price(), "quantity": 1}
    sub: Obj = {
        "id": ids.sub,
        "object": "subscription",
        "cancel_at_period_end": False,
        "collection_method": "charge_automatically",
        "created": now,
        "currency": "usd",
        "customer": ids.customer,
        "items": {"object": "list", "data": [item], "has_more": False},
        "latest_invoice": ids.invoice,
        "livemode": False,
        "status": "active",
        "trial_end": None,
        "trial_start": None,
    }
    period = {"current_period_start": now, "current_period_end": now + _MONTH_S}
    (item if basil else sub).update(period)
    return sub


def _invoice(ids: _Ids, basil: bool, now: int) -> Obj:
    line: Obj = {"id": _id("il"), "object": "line_item", "amount": 2000, "currency": "usd",
                 "quantity": 1, "period": {"start": now, "end": now + _MONTH_S}}  # fmt: skip
    inv: Obj = {
        "id": ids.invoice,
        "object": "invoice",
        "amount_due": 2000,
        "amount_paid": 2000,
        "amount_remaining": 0,
        "attempt_count": 1,
        "attempted": True,
        "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically",
        "created": now,
        "currency": "usd",
        "customer": ids.customer,
        "lines": {"object": "list", "data": [line], "has_more": False},
        "livemode": False,
        "status": "paid",
        "total": 2000,
    }
    if basil:
        details = {"subscription": ids.sub, "metadata": {}}
        inv["parent"] = {"type": "subscription_details", "subscription_details": details}
        item = {"subscription": ids.sub, "subscription_item": ids.item, "proration": False}
        line["parent"] = {"type": "subscription_item_details", "subscription_item_details": item}
        price = {"price": _price()["id"], "product": _price()["product"]}
        line["pricing"] = {"type": "price_details", "price_details": price,
                           "unit_amount_decimal": "2000"}  # fmt: skip
    else:
        inv.update(subscription=ids.sub, payment_intent=ids.pi, charge=ids.charge, paid=True)
        line.update(price=_price(), subscription=ids.sub, type="subscription")
    return inv


def _payment_intent(ids: _Ids, basil: bool, now: int) -> Obj:
    pi: Obj = {
        "id": ids.pi,
        "object": "payment_intent",
        "amount": 4900,
        "amount_received": 4900,
        "created": now,
        "currency": "usd",
        "customer": ids.customer,
        "description": "paybridge sample one-time purchase",
        "latest_charge": ids.charge,
        "livemode": False,
        "status": "succeeded",
    }
    if not basil:
        pi["invoice"] = None
    return pi


def _checkout_session(ids: _Ids, basil: bool, now: int) -> Obj:
    return {
        "id": ids.session,
        "object": "checkout.session",
        "amount_subtotal": 4900,
        "amount_total": 4900,
        "created": now,
        "currency": "usd",
        "customer": ids.customer,
        "invoice": None,
        "livemode": False,
        "mode": "payment",
        "payment_intent": ids.pi,
        "payment_status": "paid",
        "status": "complete",
        "subscription": None,
    }


def _refund(ids: _Ids, basil: bool, now: int) -> Obj:
    return {"id": ids.refund, "object": "refund", "amount": 4900, "charge": ids.charge,
            "created": now, "currency": "usd", "payment_intent": ids.pi,
            "reason": "requested_by_customer", "status": "succeeded"}  # fmt: skip


def _charge(ids: _Ids, basil: bool, now: int) -> Obj:
    charge: Obj = {"id": ids.charge, "object": "charge", "amount": 4900, "amount_captured": 4900,
                   "amount_refunded": 4900, "captured": True, "created": now, "currency": "usd",
                   "customer": ids.customer, "paid": True, "payment_intent": ids.pi,
                   "refunded": True, "status": "succeeded"}  # fmt: skip
    if not basil:
        charge["invoice"] = None
    return charge


_BUILDERS: dict[str, Callable[[_Ids, bool, int], Obj]] = {
    "customer.subscription.created": _subscription,
    "customer.subscription.updated": _subscription,
    "customer.subscription.deleted": _subscription,
    "invoice.paid": _invoice,
    "invoice.payment_succeeded": _invoice,
    "payment_intent.succeeded": _payment_intent,
    "checkout.session.completed": _checkout_session,
    "charge.refunded": _charge,
    "refund.created": _refund,
}
# (changes to the object, previous_attributes) that make a sample mean its type
_CHANGES: dict[str, tuple[Obj, Obj | None]] = {
    "customer.subscription.updated": (
        {"cancel_at_period_end": True},
        {"cancel_at_period_end": False},
    ),
    "customer.subscription.deleted": ({"status": "canceled"}, None),
}
SAMPLE_TYPES: tuple[str, ...] = tuple(_BUILDERS)


def sample_event(
    event_type: str, *, api_version: str = DEFAULT_SAMPLE_API_VERSION, **overrides: Any
) -> dict[str, Any]:
    """A whole Stripe event of ``event_type`` with fresh ids; ``overrides`` replace top-level
    fields of ``data.object`` (e.g. ``status="trialing"``).

    Raises:
        ValueError: ``event_type`` is not one of :data:`SAMPLE_TYPES`.
    """
    if event_type not in _BUILDERS:
        raise ValueError(f"no sample for {event_type!r}; known: {', '.join(SAMPLE_TYPES)}")
    now = int(time.time())
    obj = _BUILDERS[event_type](_Ids(), is_basil_version(api_version), now)
    changes, previous = _CHANGES.get(event_type, ({}, None))
    obj.update(changes)
    obj.update(overrides)
    data: Obj = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    return {
        "id": _id("evt"),
        "object": "event",
        "api_version": api_version,
        "created": now,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": _id("req"), "idempotency_key": None},
        "type": event_type,
    }
