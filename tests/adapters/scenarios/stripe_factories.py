"""Factories for realistic Stripe objects and events, in both API shapes.

Shapes follow Stripe's API reference and the fixtures under /work/shared/fixtures/stripe:
before ``2025-03-31.basil`` invoices carry ``subscription``/``payment_intent``/``charge``,
PaymentIntents carry ``invoice`` and subscriptions carry ``current_period_*`` (and the legacy
``plan``/``quantity`` for one item). From basil on, an invoice names its subscription under
``parent.subscription_details``, lines carry ``parent.subscription_item_details`` and
``pricing.price_details``, ``current_period_*`` lives on the items and the PaymentIntent-invoice
link is an ``invoice_payment`` object (event ``invoice_payment.paid``).
"""

from __future__ import annotations

import copy
from typing import Any, Literal

__all__ = [
    "BASIC",
    "BASIC_YEARLY",
    "BASIL_VERSION",
    "GADGET",
    "LEGACY_REFUND_VERSION",
    "PRE_BASIL_VERSION",
    "PRO",
    "Fact",
    "Obj",
    "Shape",
    "StripeFeed",
    "charge",
    "checkout_session",
    "invoice",
    "invoice_payment",
    "payment_intent",
    "price",
    "refund",
    "subscription",
]

Shape = Literal["pre_basil", "basil"]
Obj = dict[str, Any]
Fact = tuple[str, str]  # (canonical type, dedupe_key)

PRE_BASIL_VERSION = "2025-02-24.acacia"
BASIL_VERSION = "2025-03-31.basil"
LEGACY_REFUND_VERSION = "2022-08-01"  # charge.refunded still embeds `refunds`
CUSTOMER = "cus_T1customer"
MONTH_S = 30 * 86400


class StripeFeed:
    """Builds one scenario's event sequence, in the order Stripe sends it. Event ids are
    deterministic (``evt_001``…) so that scenarios can state the exact dedupe keys."""

    def __init__(
        self, shape: Shape, *, version: str | None = None, invoice_payment: bool = True
    ) -> None:
        self.shape: Shape = shape
        # Basil sends invoice_payment.paid only when the endpoint is subscribed to it (and not
        # every basil version sends it): streams are tested with and without.
        self.sends_invoice_payment = invoice_payment
        self.version = version or (BASIL_VERSION if shape == "basil" else PRE_BASIL_VERSION)
        self.now = 1_760_000_000
        self.events: list[Obj] = []

    @property
    def basil(self) -> bool:
        return self.shape == "basil"

    def emit(self, event_type: str, obj: Obj, previous: Obj | None = None) -> str:
        """Append one whole Stripe event; return its id."""
        self.now += 7
        event_id = f"evt_{len(self.events) + 1:03d}"
        data: Obj = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = copy.deepcopy(previous)
        self.events.append(
            {
                "id": event_id,
                "object": "event",
                "api_version": self.version,
                "created": self.now,
                "data": data,
                "livemode": False,
                "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None},
                "type": event_type,
            }
        )
        return event_id


def price(price_id: str, amount: int, interval: str = "month", product: str = "prod_Pro") -> Obj:
    """A recurring per-unit price."""
    return {
        "id": price_id,
        "object": "price",
        "active": True,
        "billing_scheme": "per_unit",
        "currency": "usd",
        "product": product,
        "recurring": {"interval": interval, "interval_count": 1, "usage_type": "licensed"},
        "type": "recurring",
        "unit_amount": amount,
        "unit_amount_decimal": str(amount),
    }


def _plan(p: Obj) -> Obj:
    recurring = p["recurring"]
    return {
        "id": p["id"],
        "object": "plan",
        "amount": p["unit_amount"],
        "currency": p["currency"],
        "interval": recurring["interval"],
        "interval_count": recurring["interval_count"],
        "product": p["product"],
    }


def _item(feed: StripeFeed, sub_id: str, p: Obj, quantity: int, period: tuple[int, int]) -> Obj:
    item: Obj = {
        "id": f"si_{sub_id[4:]}_{p['id'][6:]}",
        "object": "subscription_item",
        "price": p,
        "quantity": quantity,
        "subscription": sub_id,
    }
    if feed.basil:
        item["current_period_start"], item["current_period_end"] = period
    else:
        item["plan"] = _plan(p)
    return item


def subscription(
    feed: StripeFeed,
    sub_id: str,
    status: str,
    items: list[tuple[Obj, int]],
    *,
    period_start: int = 1_760_000_000,
    trial: tuple[int, int] | None = None,
    cancel_at_period_end: bool = False,
    latest_invoice: str | None = None,
) -> Obj:
    """A subscription in ``feed``'s shape; ``items`` are (price, quantity)."""
    period = (period_start, period_start + MONTH_S)
    sub: Obj = {
        "id": sub_id,
        "object": "subscription",
        "cancel_at": period[1] if cancel_at_period_end else None,
        "cancel_at_period_end": cancel_at_period_end,
        "collection_method": "charge_automatically",
        "currency": "usd",
        "customer": CUSTOMER,
        "items": {
            "object": "list",
            "data": [_item(feed, sub_id, p, q, period) for p, q in items],
            "has_more": False,
        },
        "latest_invoice": latest_invoice,
        "livemode": False,
        "status": status,
        "trial_start": trial[0] if trial else None,
        "trial_end": trial[1] if trial else None,
    }
    if not feed.basil:
        sub["current_period_start"], sub["current_period_end"] = period
        if len(items) == 1:
            sub["plan"], sub["quantity"] = _plan(items[0][0]), items[0][1]
    return sub


def _line(feed: StripeFeed, sub_id: str | None, p: Obj, quantity: int) -> Obj:
    line: Obj = {
        "id": f"il_{p['id'][6:]}_{quantity}",
        "object": "line_item",
        "amount": p["unit_amount"] * quantity,
        "currency": "usd",
        "quantity": quantity,
    }
    if feed.basil:
        line["parent"] = {
            "type": "subscription_item_details" if sub_id else "invoice_item_details",
            "subscription_item_details": {"subscription": sub_id, "proration": False}
            if sub_id
            else None,
        }
        line["pricing"] = {
            "type": "price_details",
            "price_details": {"price": p["id"], "product": p["product"]},
            "unit_amount_decimal": p["unit_amount_decimal"],
        }
    else:
        line.update(price=p, plan=_plan(p), subscription=sub_id, type="subscription")
    return line


def invoice(
    feed: StripeFeed,
    invoice_id: str,
    *,
    sub_id: str | None,
    billing_reason: str,
    status: str,
    lines: list[tuple[Obj, int]],
    attempt_count: int = 0,
    payment_intent_id: str | None = None,
    discount_all: bool = False,
) -> Obj:
    """An invoice in ``feed``'s shape. ``discount_all`` makes it a $0 (100 % coupon) invoice."""
    subtotal = sum(p["unit_amount"] * q for p, q in lines)
    total = 0 if discount_all else subtotal
    paid = status == "paid"
    inv: Obj = {
        "id": invoice_id,
        "object": "invoice",
        "amount_due": total,
        "amount_paid": total if paid else 0,
        "amount_remaining": 0 if paid else total,
        "attempt_count": attempt_count,
        "attempted": attempt_count > 0,
        "billing_reason": billing_reason,
        "collection_method": "charge_automatically",
        "currency": "usd",
        "customer": CUSTOMER,
        "lines": {
            "object": "list",
            "data": [_line(feed, sub_id, p, q) for p, q in lines],
            "has_more": False,
        },
        "livemode": False,
        "status": status,
        "subtotal": subtotal,
        "total": total,
    }
    if feed.basil:
        inv["parent"] = (
            {
                "type": "subscription_details",
                "subscription_details": {"subscription": sub_id, "metadata": {}},
            }
            if sub_id
            else None
        )
    else:
        inv["subscription"] = sub_id
        inv["payment_intent"] = payment_intent_id if total else None
        inv["charge"] = f"ch_{payment_intent_id[3:]}" if payment_intent_id and paid else None
        inv["paid"] = paid
    return inv


def payment_intent(
    feed: StripeFeed,
    pi_id: str,
    status: str,
    amount: int,
    *,
    invoice_id: str | None = None,
    declined: bool = False,
) -> Obj:
    """A PaymentIntent; pre-basil it names ``invoice_id`` (basil has no ``invoice`` field).
    ``declined``: the last attempt failed (``last_payment_error`` set)."""
    succeeded = status == "succeeded"
    pi: Obj = {
        "id": pi_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": amount if succeeded else 0,
        "currency": "usd",
        "customer": CUSTOMER,
        "latest_charge": f"ch_{pi_id[3:]}" if declined or status == "succeeded" else None,
        "livemode": False,
        "status": status,
    }
    if declined:
        pi["last_payment_error"] = {"code": "card_declined", "type": "card_error"}
    if not feed.basil:
        pi["invoice"] = invoice_id
    return pi


def invoice_payment(invoice_id: str, pi_id: str, amount: int) -> Obj:
    """Basil's ``invoice_payment``: ``pi_id`` paid ``invoice_id``."""
    return {
        "id": f"inpay_{invoice_id[3:]}_{pi_id[3:]}",
        "object": "invoice_payment",
        "amount_paid": amount,
        "amount_requested": amount,
        "currency": "usd",
        "invoice": invoice_id,
        "is_default": True,
        "livemode": False,
        "payment": {"type": "payment_intent", "payment_intent": pi_id},
        "status": "paid",
    }


def charge(
    feed: StripeFeed,
    pi_id: str,
    amount: int,
    *,
    status: str = "succeeded",
    refunds: list[Obj] | None = None,
    amount_refunded: int | None = None,
    invoice_id: str | None = None,
) -> Obj:
    """A charge of ``pi_id``; ``refunds`` are embedded only when given (pre-2022-11-15),
    otherwise ``amount_refunded`` says how much was refunded."""
    embedded = sum(r["amount"] for r in refunds or [] if r["status"] == "succeeded")
    refunded = embedded if amount_refunded is None else amount_refunded
    ch: Obj = {
        "id": f"ch_{pi_id[3:]}",
        "object": "charge",
        "amount": amount,
        "amount_captured": amount if status == "succeeded" else 0,
        "amount_refunded": refunded,
        "currency": "usd",
        "customer": CUSTOMER,
        "paid": status == "succeeded",
        "payment_intent": pi_id,
        "refunded": refunded == amount,
        "status": status,
    }
    if refunds is not None:
        ch["refunds"] = {"object": "list", "data": refunds, "has_more": False}
    if not feed.basil:
        ch["invoice"] = invoice_id
    return ch


def refund(refund_id: str, pi_id: str, amount: int, status: str = "succeeded") -> Obj:
    """A refund of ``pi_id``'s charge."""
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "charge": f"ch_{pi_id[3:]}",
        "currency": "usd",
        "payment_intent": pi_id,
        "reason": "requested_by_customer",
        "status": status,
    }


def checkout_session(
    cs_id: str,
    mode: str,
    payment_status: str,
    *,
    amount: int,
    pi_id: str | None = None,
    sub_id: str | None = None,
    invoice_id: str | None = None,
) -> Obj:
    """A completed Checkout session (``mode`` payment or subscription)."""
    return {
        "id": cs_id,
        "object": "checkout.session",
        "amount_subtotal": amount,
        "amount_total": amount,
        "currency": "usd",
        "customer": CUSTOMER,
        "invoice": invoice_id,
        "livemode": False,
        "mode": mode,
        "payment_intent": pi_id,
        "payment_status": payment_status,
        "status": "complete",
        "subscription": sub_id,
    }


BASIC = price("price_Basic", 1000)
PRO = price("price_Pro", 2500)
BASIC_YEARLY = price("price_BasicY", 9000, "year")
GADGET = 4200  # a one-time product, in cents
