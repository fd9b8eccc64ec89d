"""Stripe event → canonical events: the rules of docs/events.md, pure (no I/O, no clock).

One handler per Stripe event type (``_RULES``); each returns a :class:`Normalized`. The
PaymentIntent/invoice rule: before basil a PI that names an invoice produces nothing but a
:class:`Link`; from basil on a PI's events are returned as :class:`Deferred` and are emitted
only if the PI turns out to pay no invoice (:mod:`bridge.holds`): ``invoice_payment.paid`` and
invoice events naming their PI provide links, invoice events naming none an
:class:`InvoicePayment` to match by customer, amount and currency. The dedupe keys are those
of the catalog in ``docs/events.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from adapters.base import (
    Deferred,
    InvoicePayment,
    Link,
    Normalized,
    PaymentKey,
    ProviderEvent,
)
from adapters.stripe_shapes import (
    Shape,
    expandable_id,
    invoice_payment_intents,
    invoice_products,
    invoice_subscription,
    obj_id,
    recurring_amount_per_year,
    shape_of,
    subscription_items,
)
from bridge.events import Event

__all__ = ["handled_event_types", "normalize_stripe_event"]

_LIVE = ("active", "trialing")
_NOT_LIVE_YET = ("incomplete", "incomplete_expired")


@dataclass(frozen=True, slots=True)
class _Ctx:
    """One snapshot event being normalized, with the helpers every rule needs."""

    event: ProviderEvent
    obj: dict[str, Any]
    prev: dict[str, Any]
    shape: Shape

    @property
    def id(self) -> str:
        return obj_id(self.obj)

    def make(
        self,
        type_: str,
        dedupe_key: str,
        object_type: str,
        *,
        data_object: dict[str, Any] | None = None,
        object_id: str | None = None,
        keep_previous: bool = True,
    ) -> Event:
        """A canonical event about this provider event (data.object = the object as received
        unless ``data_object`` is given)."""
        return Event.make(
            type=type_,
            dedupe_key=dedupe_key,
            source="stripe",
            source_event_id=self.event.id,
            created=self.event.created,
            data_object=self.obj if data_object is None else data_object,
            previous_attributes=self.prev if keep_previous else None,
            object_type=object_type,
            object_id=object_id if object_id is not None else self.id,
            api_version=self.event.api_version,
            livemode=self.event.livemode,
        )

    def payment(self, type_: str, key: str, object_type: str, summary: dict[str, Any]) -> Event:
        """A ``payment.succeeded``/``payment.failed`` event with its summary as data.object."""
        return self.make(type_, key, object_type, data_object=summary, keep_previous=False)


def _summary(
    *,
    kind: str,
    source: Mapping[str, Any],
    amount: Any,
    invoice: str | None = None,
    payment_intent: str | None = None,
    subscription: str | None = None,
    products: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "customer": expandable_id(source.get("customer")),
        "amount": amount,
        "currency": source.get("currency"),
        "invoice": invoice,
        "payment_intent": payment_intent,
        "subscription": subscription,
        "products": products or [],
        "source_object": dict(source),
    }


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _payment_key(
    outcome: Literal["succeeded", "failed"], source: Mapping[str, Any], amount: Any
) -> PaymentKey | None:
    """What the money of ``source`` is matched on when nothing links a PI to its invoice."""
    customer = expandable_id(source.get("customer"))
    currency = source.get("currency")
    if not (customer and isinstance(currency, str) and _positive(amount)):
        return None
    return PaymentKey(outcome, customer, amount, currency)


def _nothing(reason: str) -> Normalized:
    return Normalized(ignored_reason=reason)


def _result(events: list[Event], reason: str) -> Normalized:
    return Normalized(events=events) if events else _nothing(reason)


# --- Checkout ------------------------------------------------------------------------------


def _checkout_paid(c: _Ctx) -> Normalized:
    """A session that is paid (or needs no payment): completed, plus payment.succeeded for a
    payment-mode session whose PaymentIntent pays no invoice."""
    status = c.obj.get("payment_status")
    pi = expandable_id(c.obj.get("payment_intent"))
    invoice = expandable_id(c.obj.get("invoice"))
    out = Normalized()
    if c.obj.get("mode") == "payment" and pi:
        if invoice:  # invoice_creation: the invoice events carry the payment
            out.links.append(Link(pi, invoice))
        else:
            out.standalone_payment_intents.append(pi)
    if status not in ("paid", "no_payment_required"):
        if out.produces_nothing:
            out.ignored_reason = f"checkout session {c.id} is {status}: waiting for payment"
        return out
    out.events.append(
        c.make("checkout.session.completed", f"checkout:{c.id}:completed", "checkout.session")
    )
    amount = c.obj.get("amount_total")
    if c.obj.get("mode") == "payment" and status == "paid" and not invoice and _positive(amount):
        summary = _summary(kind="one_time", source=c.obj, amount=amount, payment_intent=pi)
        key = f"payment:{pi or c.id}"
        out.events.append(c.payment("payment.succeeded", key, "checkout.session", summary))
    return out


def _checkout_failed(c: _Ctx) -> Normalized:
    out = _checkout_paid_links(c)
    out.events.append(
        c.make(
            "checkout.session.async_payment_failed", f"checkout:{c.id}:failed", "checkout.session"
        )
    )
    return out


def _checkout_paid_links(c: _Ctx) -> Normalized:
    pi = expandable_id(c.obj.get("payment_intent"))
    if c.obj.get("mode") == "payment" and pi and not c.obj.get("invoice"):
        return Normalized(standalone_payment_intents=[pi])
    return Normalized()


def _checkout_expired(c: _Ctx) -> Normalized:
    event = c.make("checkout.session.expired", f"checkout:{c.id}:expired", "checkout.session")
    return Normalized(events=[event])


# --- Subscriptions -------------------------------------------------------------------------


def _sub_created(c: _Ctx) -> Normalized:
    status = c.obj.get("status")
    events = [c.make("customer.subscription.created", f"sub:{c.id}:created", "subscription")]
    if status in _LIVE:
        events.append(
            c.make("customer.subscription.started", f"sub:{c.id}:started", "subscription")
        )
    if status == "trialing":
        key = f"sub:{c.id}:trial_start:{c.obj.get('trial_start')}"
        events.append(c.make("customer.subscription.trial_start", key, "subscription"))
    return Normalized(events=events)


def _old_items(c: _Ctx) -> list[Mapping[str, Any]] | None:
    """The subscription items before the change, when ``previous_attributes`` names one."""
    if "items" in c.prev:
        return subscription_items(c.prev)
    if "plan" not in c.prev and "quantity" not in c.prev:
        return None
    current = subscription_items(c.obj)
    if len(current) != 1:  # legacy single-plan fields cannot describe several items
        return None
    item = current[0]
    old_plan = c.prev.get("plan")
    plan = {**(item.get("plan") or {}), **old_plan} if isinstance(old_plan, Mapping) else None
    if plan is None:
        plan = item.get("price") or item.get("plan")
    return [{"plan": plan, "quantity": c.prev.get("quantity", item.get("quantity", 1))}]


def _is_upgrade(c: _Ctx) -> bool:
    old = _old_items(c)
    if old is None:
        return False
    before = recurring_amount_per_year(old)
    after = recurring_amount_per_year(subscription_items(c.obj))
    return before is not None and after is not None and after > before


def _status_events(c: _Ctx, status: Any, was: Any) -> list[Event]:
    """Events derived from a status transition ``was`` → ``status`` of ``…updated``."""
    events: list[Event] = []
    if was in _NOT_LIVE_YET and status in _LIVE:
        events.append(
            c.make("customer.subscription.started", f"sub:{c.id}:started", "subscription")
        )
    if status == "trialing" and was != "trialing":
        key = f"sub:{c.id}:trial_start:{c.obj.get('trial_start')}"
        events.append(c.make("customer.subscription.trial_start", key, "subscription"))
    if was == "trialing" and status != "trialing":
        key = f"sub:{c.id}:trial_end:{c.obj.get('trial_end')}"
        events.append(c.make("customer.subscription.trial_end", key, "subscription"))
    if status == "past_due" and was != "past_due":
        key = f"sub:{c.id}:past_due:{expandable_id(c.obj.get('latest_invoice'))}"
        events.append(c.make("customer.subscription.past_due", key, "subscription"))
    return events


def _sub_updated(c: _Ctx) -> Normalized:
    evt = c.event.id
    events = [c.make("customer.subscription.updated", f"stripe:{evt}", "subscription")]
    if "status" in c.prev:
        events += _status_events(c, c.obj.get("status"), c.prev.get("status"))
    if _is_upgrade(c):
        key = f"sub:{c.id}:upgraded:{evt}"
        events.append(c.make("customer.subscription.upgraded", key, "subscription"))
    if c.prev.get("cancel_at_period_end") is True and c.obj.get("cancel_at_period_end") is False:
        events.append(c.make("customer.subscription.recovered", f"stripe:{evt}", "subscription"))
    return Normalized(events=events)


def _sub_simple(type_: str, key_of: Callable[[_Ctx], str]) -> Callable[[_Ctx], Normalized]:
    def rule(c: _Ctx) -> Normalized:
        return Normalized(events=[c.make(type_, key_of(c), "subscription")])

    return rule


# --- Invoices ------------------------------------------------------------------------------


def _invoice_links(c: _Ctx) -> list[Link]:
    return [Link(pi, c.id) for pi in invoice_payment_intents(c.obj, c.shape)]


def _invoice_summary(c: _Ctx, amount: Any) -> dict[str, Any]:
    sub = invoice_subscription(c.obj, c.shape)
    pis = invoice_payment_intents(c.obj, c.shape)
    return _summary(
        kind="subscription" if sub else "one_time",
        source=c.obj,
        amount=amount,
        invoice=c.id,
        payment_intent=pis[0] if pis else None,
        subscription=sub,
        products=invoice_products(c.obj),
    )


def _invoice_paid(c: _Ctx) -> Normalized:
    """``invoice.paid`` and ``invoice.payment_succeeded`` (both fire for one payment)."""
    if c.obj.get("status") != "paid":
        return _nothing(f"invoice {c.id} is {c.obj.get('status')}, not paid")
    events = [c.make("invoice.paid", f"invoice:{c.id}:paid", "invoice")]
    if c.obj.get("billing_reason") == "subscription_cycle":
        events.append(c.make("customer.subscription.renewed", f"invoice:{c.id}:renewed", "invoice"))
    amount = c.obj.get("amount_paid")
    out = Normalized(events=events, links=_invoice_links(c))
    if _positive(amount):  # $0 invoices move no money
        summary = _invoice_summary(c, amount)
        events.append(c.payment("payment.succeeded", f"payment:{c.id}", "invoice", summary))
        _unlinked_payment(out, c, f"payment:{c.id}", _payment_key("succeeded", c.obj, amount))
    return out


def _unlinked_payment(out: Normalized, c: _Ctx, ref: str, key: PaymentKey | None) -> None:
    """An invoice naming none of its PaymentIntents (basil without the ``payments`` list) is
    kept to match an unlinked PI against (same customer, amount and currency)."""
    if key is not None and not out.links:
        out.invoice_payments.append(InvoicePayment(c.id, ref, key))


def _invoice_failed(c: _Ctx) -> Normalized:
    attempt = c.obj.get("attempt_count")
    events = [c.make("invoice.payment_failed", f"invoice:{c.id}:failed:{attempt}", "invoice")]
    if c.obj.get("billing_reason") == "subscription_cycle":
        key = f"invoice:{c.id}:renew_failed:{attempt}"
        events.append(c.make("customer.subscription.renew_failed", key, "invoice"))
    amount = c.obj.get("amount_due")
    out = Normalized(events=events, links=_invoice_links(c))
    if _positive(amount):
        summary = _invoice_summary(c, amount)
        key = f"payment_failed:{c.id}:{attempt}"
        events.append(c.payment("payment.failed", key, "invoice", summary))
        _unlinked_payment(out, c, key, _payment_key("failed", c.obj, amount))
    return out


def _invoice_action(c: _Ctx) -> Normalized:
    key = f"invoice:{c.id}:action:{c.obj.get('attempt_count')}"
    event = c.make("invoice.payment_action_required", key, "invoice")
    return Normalized(events=[event], links=_invoice_links(c))


def _invoice_payment_paid(c: _Ctx) -> Normalized:
    """Basil's ``invoice_payment.paid``: the link between a PaymentIntent and its invoice."""
    payment = c.obj.get("payment")
    pi = expandable_id(payment.get("payment_intent")) if isinstance(payment, Mapping) else None
    invoice = expandable_id(c.obj.get("invoice"))
    if not (pi and invoice):
        return _nothing(f"invoice_payment {c.id} names no PaymentIntent and invoice")
    return Normalized(links=[Link(pi, invoice)])


# --- PaymentIntents ------------------------------------------------------------------------


def _pi_events(c: _Ctx, succeeded: bool) -> list[Event]:
    amount = c.obj.get("amount_received") if succeeded else c.obj.get("amount")
    summary = _summary(kind="one_time", source=c.obj, amount=amount, payment_intent=c.id)
    if succeeded:
        return [
            c.make("payment_intent.succeeded", f"pi:{c.id}:succeeded", "payment_intent"),
            c.payment("payment.succeeded", f"payment:{c.id}", "payment_intent", summary),
        ]
    key = f"payment_failed:{c.id}:{c.event.id}"
    return [
        c.make("payment_intent.payment_failed", f"stripe:{c.event.id}", "payment_intent"),
        c.payment("payment.failed", key, "payment_intent", summary),
    ]


def _pi_invoice(pi: Mapping[str, Any]) -> str | None:
    """The invoice a PaymentIntent names: ``invoice`` before basil; from clover on, one
    created by an invoice carries its id as ``payment_details.order_reference`` (a merchant's
    own order reference is not an invoice id)."""
    named = expandable_id(pi.get("invoice"))
    if named:
        return named
    details = pi.get("payment_details")
    ref = details.get("order_reference") if isinstance(details, Mapping) else None
    return ref if isinstance(ref, str) and ref.startswith("in_") else None


def _payment_intent(succeeded: bool) -> Callable[[_Ctx], Normalized]:
    def rule(c: _Ctx) -> Normalized:
        invoice = _pi_invoice(c.obj)
        if invoice:  # the invoice events cover this payment
            return Normalized(links=[Link(c.id, invoice)])
        events = _pi_events(c, succeeded)
        if c.shape == "pre_basil":
            return Normalized(events=events)
        amount = c.obj.get("amount_received") if succeeded else c.obj.get("amount")
        key = _payment_key("succeeded" if succeeded else "failed", c.obj, amount)
        deferred = Deferred(c.id, tuple(events), livemode=c.event.livemode, key=key)
        return Normalized(deferred=[deferred])

    return rule


# --- Refunds -------------------------------------------------------------------------------


def _refund_event(c: _Ctx, refund: dict[str, Any]) -> Event | None:
    refund_id = obj_id(refund)
    if refund.get("status") != "succeeded" or not refund_id:
        return None
    return c.make(
        "refund.succeeded",
        f"refund:{refund_id}:succeeded",
        "refund",
        data_object=refund,
        object_id=refund_id,
        keep_previous=refund is c.obj,
    )


def _refund(c: _Ctx) -> Normalized:
    """``refund.created``/``refund.updated``/``charge.refund.updated`` (object: a refund)."""
    event = _refund_event(c, c.obj)
    return _result([event] if event else [], f"refund {c.id} is {c.obj.get('status')}")


def _charge_refunded(c: _Ctx) -> Normalized:
    """Pre-2022-11-15 ``charge.refunded`` embeds its refunds; later ones do not (the
    ``refund.*`` events carry them)."""
    refunds = c.obj.get("refunds")
    data = refunds.get("data") if isinstance(refunds, Mapping) else None
    if not isinstance(data, list):
        return _nothing("charge.refunded without embedded refunds: refund.* events carry them")
    found = [_refund_event(c, r) for r in data if isinstance(r, dict)]
    return _result([e for e in found if e], f"charge {c.id} has no succeeded refund")


_RULES: dict[str, Callable[[_Ctx], Normalized]] = {
    "checkout.session.completed": _checkout_paid,
    "checkout.session.async_payment_succeeded": _checkout_paid,
    "checkout.session.async_payment_failed": _checkout_failed,
    "checkout.session.expired": _checkout_expired,
    "customer.subscription.created": _sub_created,
    "customer.subscription.updated": _sub_updated,
    "customer.subscription.trial_will_end": _sub_simple(
        "customer.subscription.trial_will_end",
        lambda c: f"sub:{c.id}:trial_will_end:{c.obj.get('trial_end')}",
    ),
    "customer.subscription.paused": _sub_simple(
        "customer.subscription.paused", lambda c: f"stripe:{c.event.id}"
    ),
    "customer.subscription.resumed": _sub_simple(
        "customer.subscription.resumed", lambda c: f"stripe:{c.event.id}"
    ),
    "customer.subscription.deleted": _sub_simple(
        "customer.subscription.deleted", lambda c: f"sub:{c.id}:deleted"
    ),
    "invoice.paid": _invoice_paid,
    "invoice.payment_succeeded": _invoice_paid,
    "invoice.payment_failed": _invoice_failed,
    "invoice.payment_action_required": _invoice_action,
    "invoice_payment.paid": _invoice_payment_paid,
    "payment_intent.succeeded": _payment_intent(succeeded=True),
    "payment_intent.payment_failed": _payment_intent(succeeded=False),
    "refund.created": _refund,
    "refund.updated": _refund,
    "charge.refund.updated": _refund,
    "charge.refunded": _charge_refunded,
}


def handled_event_types() -> frozenset[str]:
    """The Stripe event types with a rule (what the webhook endpoint should send)."""
    return frozenset(_RULES)


def normalize_stripe_event(event: ProviderEvent) -> Normalized:
    """Map one parsed Stripe event to canonical events (docs/events.md). Pure; never raises
    for an event :func:`adapters.stripe.StripeAdapter.parse` accepted: types without a rule,
    thin events and events whose condition does not hold give ``ignored_reason``."""
    if event.shape == "thin":
        return _nothing(
            f"thin event {event.type} carries no object: fetch the related object "
            "(needs sources.stripe.api_key) and normalize the fetched snapshot"
        )
    rule = _RULES.get(event.type)
    if rule is None:
        return _nothing(f"no rule for {event.type}")
    data = event.payload.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return _nothing(f"{event.type} has no data.object")
    prev = data.get("previous_attributes") if isinstance(data, dict) else None
    ctx = _Ctx(event, obj, prev if isinstance(prev, dict) else {}, shape_of(event.api_version, obj))
    return rule(ctx)
