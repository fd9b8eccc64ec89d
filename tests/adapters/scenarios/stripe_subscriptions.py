"""Subscription lifecycle scenarios: the events Stripe sends, in order, and the facts they mean."""

from __future__ import annotations

from tests.adapters.scenarios.stripe_factories import (
    BASIC,
    BASIC_YEARLY,
    PRO,
    Fact,
    Obj,
    StripeFeed,
    charge,
    checkout_session,
    invoice,
    invoice_payment,
    payment_intent,
    price,
    subscription,
)

__all__ = [
    "canceled",
    "downgrade",
    "incomplete_then_active_after_3ds",
    "one_time_beside_renewal",
    "paused_and_resumed",
    "renewal_declined_twice",
    "renewal_failed_then_paid",
    "renewal_paid",
    "scheduled_cancellation_undone",
    "subscription_paid_at_once",
    "trial_canceled_before_paying",
    "trial_that_converts",
    "upgrade",
    "zero_dollar_subscription",
]


# --- building blocks: what Stripe sends around one invoice --------------------------------


def _open_invoice(
    f: StripeFeed, inv: str, sub: str | None, reason: str, lines: list[tuple[Obj, int]]
) -> None:
    """invoice.created (draft) and invoice.finalized (open): no canonical rule."""
    for event_type, status in (("invoice.created", "draft"), ("invoice.finalized", "open")):
        obj = invoice(f, inv, sub_id=sub, billing_reason=reason, status=status, lines=lines)
        f.emit(event_type, obj)


def _pay_invoice(
    f: StripeFeed,
    inv: str,
    sub: str | None,
    reason: str,
    lines: list[tuple[Obj, int]],
    pi: str,
    attempt: int = 1,
) -> None:
    """charge.succeeded, payment_intent.succeeded, [basil: invoice_payment.paid],
    invoice.paid, invoice.payment_succeeded."""
    amount = sum(p["unit_amount"] * q for p, q in lines)
    f.emit("charge.succeeded", charge(f, pi, amount, invoice_id=inv))
    f.emit("payment_intent.succeeded", payment_intent(f, pi, "succeeded", amount, invoice_id=inv))
    if f.basil and f.sends_invoice_payment:
        f.emit("invoice_payment.paid", invoice_payment(inv, pi, amount))
    paid = invoice(
        f,
        inv,
        sub_id=sub,
        billing_reason=reason,
        status="paid",
        lines=lines,
        attempt_count=attempt,
        payment_intent_id=pi,
    )
    f.emit("invoice.paid", paid)
    f.emit("invoice.payment_succeeded", paid)


def _pay_zero_invoice(f: StripeFeed, inv: str, sub: str, reason: str) -> None:
    """A $0 invoice (trial or 100 % coupon) is paid at finalization, without a charge."""
    lines = [(BASIC, 1)]
    _open_invoice(f, inv, sub, reason, lines)
    paid = invoice(
        f, inv, sub_id=sub, billing_reason=reason, status="paid", lines=lines, discount_all=True
    )
    f.emit("invoice.paid", paid)
    f.emit("invoice.payment_succeeded", paid)


def _renewal_update(f: StripeFeed, sub: str, new_invoice: str, old_invoice: str) -> str:
    """The ``customer.subscription.updated`` of a period roll-over (basil: item periods)."""
    start = 1_760_000_000 + 30 * 86400
    now = subscription(
        f, sub, "active", [(BASIC, 1)], period_start=start, latest_invoice=new_invoice
    )
    before = subscription(f, sub, "active", [(BASIC, 1)], latest_invoice=old_invoice)
    keys = ("items",) if f.basil else ("current_period_start", "current_period_end")
    previous = {k: before[k] for k in keys} | {"latest_invoice": old_invoice}
    return f.emit("customer.subscription.updated", now, previous)


RENEWED_START = 1_760_000_000 + 30 * 86400
TRIAL = (1_760_000_000, 1_760_000_000 + 14 * 86400)


def _sub_facts(sub: str, *names: str) -> set[Fact]:
    return {(f"customer.subscription.{n}", f"sub:{sub}:{n}") for n in names}


# --- subscriptions -------------------------------------------------------------------------


def subscription_paid_at_once(f: StripeFeed) -> set[Fact]:
    """Checkout in subscription mode; the card is charged at once."""
    lines = [(BASIC, 1)]
    created = subscription(f, "sub_A", "active", lines, latest_invoice="in_A1")
    f.emit("customer.subscription.created", created)
    _open_invoice(f, "in_A1", "sub_A", "subscription_create", lines)
    _pay_invoice(f, "in_A1", "sub_A", "subscription_create", lines, "pi_A1")
    session = checkout_session(
        "cs_A", "subscription", "paid", amount=1000, sub_id="sub_A", invoice_id="in_A1"
    )
    f.emit("checkout.session.completed", session)
    return _sub_facts("sub_A", "created", "started") | {
        ("invoice.paid", "invoice:in_A1:paid"),
        ("payment.succeeded", "payment:in_A1"),
        ("checkout.session.completed", "checkout:cs_A:completed"),
    }


def incomplete_then_active_after_3ds(f: StripeFeed) -> set[Fact]:
    """default_incomplete subscription; the first payment needs 3-D Secure, then succeeds."""
    lines = [(BASIC, 1)]
    f.emit(
        "customer.subscription.created",
        subscription(f, "sub_B", "incomplete", lines, latest_invoice="in_B1"),
    )
    _open_invoice(f, "in_B1", "sub_B", "subscription_create", lines)
    pi = payment_intent(f, "pi_B1", "requires_action", 1000, invoice_id="in_B1")
    f.emit("payment_intent.requires_action", pi)
    action = invoice(
        f,
        "in_B1",
        sub_id="sub_B",
        billing_reason="subscription_create",
        status="open",
        lines=lines,
        attempt_count=1,
        payment_intent_id="pi_B1",
    )
    f.emit("invoice.payment_action_required", action)
    _pay_invoice(f, "in_B1", "sub_B", "subscription_create", lines, "pi_B1")
    active = subscription(f, "sub_B", "active", lines, latest_invoice="in_B1")
    updated = f.emit("customer.subscription.updated", active, {"status": "incomplete"})
    return _sub_facts("sub_B", "created", "started") | {
        ("invoice.payment_action_required", "invoice:in_B1:action:1"),
        ("invoice.paid", "invoice:in_B1:paid"),
        ("payment.succeeded", "payment:in_B1"),
        ("customer.subscription.updated", f"stripe:{updated}"),
    }


def trial_that_converts(f: StripeFeed) -> set[Fact]:
    """A 14-day trial ($0 first invoice), trial_will_end, then the first paid cycle."""
    lines = [(BASIC, 1)]
    trialing = subscription(f, "sub_C", "trialing", lines, trial=TRIAL, latest_invoice="in_C0")
    f.emit("customer.subscription.created", trialing)
    _pay_zero_invoice(f, "in_C0", "sub_C", "subscription_create")
    f.emit("customer.subscription.trial_will_end", trialing)
    active = subscription(
        f, "sub_C", "active", lines, trial=TRIAL, period_start=TRIAL[1], latest_invoice="in_C1"
    )
    period = ("items",) if f.basil else ("current_period_start", "current_period_end")
    previous = {k: trialing[k] for k in period} | {"status": "trialing", "latest_invoice": "in_C0"}
    updated = f.emit("customer.subscription.updated", active, previous)
    _open_invoice(f, "in_C1", "sub_C", "subscription_cycle", lines)
    _pay_invoice(f, "in_C1", "sub_C", "subscription_cycle", lines, "pi_C1")
    return _sub_facts("sub_C", "created", "started") | {
        ("customer.subscription.trial_start", f"sub:sub_C:trial_start:{TRIAL[0]}"),
        ("invoice.paid", "invoice:in_C0:paid"),
        ("customer.subscription.trial_will_end", f"sub:sub_C:trial_will_end:{TRIAL[1]}"),
        ("customer.subscription.updated", f"stripe:{updated}"),
        ("customer.subscription.trial_end", f"sub:sub_C:trial_end:{TRIAL[1]}"),
        ("invoice.paid", "invoice:in_C1:paid"),
        ("customer.subscription.renewed", "invoice:in_C1:renewed"),
        ("payment.succeeded", "payment:in_C1"),
    }


def trial_canceled_before_paying(f: StripeFeed) -> set[Fact]:
    """A trial canceled (immediately) before the first payment: no money ever moves."""
    lines = [(BASIC, 1)]
    trialing = subscription(f, "sub_D", "trialing", lines, trial=TRIAL, latest_invoice="in_D0")
    f.emit("customer.subscription.created", trialing)
    _pay_zero_invoice(f, "in_D0", "sub_D", "subscription_create")
    canceled = subscription(f, "sub_D", "canceled", lines, trial=TRIAL, latest_invoice="in_D0")
    f.emit("customer.subscription.deleted", canceled)
    return _sub_facts("sub_D", "created", "started", "deleted") | {
        ("customer.subscription.trial_start", f"sub:sub_D:trial_start:{TRIAL[0]}"),
        ("invoice.paid", "invoice:in_D0:paid"),
    }


def renewal_paid(f: StripeFeed) -> set[Fact]:
    """A monthly renewal charged successfully."""
    lines = [(BASIC, 1)]
    updated = _renewal_update(f, "sub_E", "in_E1", "in_E0")
    _open_invoice(f, "in_E1", "sub_E", "subscription_cycle", lines)
    _pay_invoice(f, "in_E1", "sub_E", "subscription_cycle", lines, "pi_E1")
    return {
        ("customer.subscription.updated", f"stripe:{updated}"),
        ("invoice.paid", "invoice:in_E1:paid"),
        ("customer.subscription.renewed", "invoice:in_E1:renewed"),
        ("payment.succeeded", "payment:in_E1"),
    }


def renewal_failed_then_paid(f: StripeFeed) -> set[Fact]:
    """A renewal is declined (subscription goes past_due), the retry succeeds."""
    lines = [(BASIC, 1)]
    rolled = _renewal_update(f, "sub_F", "in_F1", "in_F0")
    _open_invoice(f, "in_F1", "sub_F", "subscription_cycle", lines)
    f.emit("charge.failed", charge(f, "pi_F1", 1000, status="failed", invoice_id="in_F1"))
    declined = payment_intent(
        f, "pi_F1", "requires_payment_method", 1000, invoice_id="in_F1", declined=True
    )
    f.emit("payment_intent.payment_failed", declined)
    failed = invoice(
        f,
        "in_F1",
        sub_id="sub_F",
        billing_reason="subscription_cycle",
        status="open",
        lines=lines,
        attempt_count=1,
        payment_intent_id="pi_F1",
    )
    f.emit("invoice.payment_failed", failed)
    past_due = subscription(
        f, "sub_F", "past_due", lines, period_start=RENEWED_START, latest_invoice="in_F1"
    )
    went_past_due = f.emit("customer.subscription.updated", past_due, {"status": "active"})
    _pay_invoice(f, "in_F1", "sub_F", "subscription_cycle", lines, "pi_F1", attempt=2)
    active = subscription(
        f, "sub_F", "active", lines, period_start=RENEWED_START, latest_invoice="in_F1"
    )
    back = f.emit("customer.subscription.updated", active, {"status": "past_due"})
    return {
        ("customer.subscription.updated", f"stripe:{rolled}"),
        ("invoice.payment_failed", "invoice:in_F1:failed:1"),
        ("customer.subscription.renew_failed", "invoice:in_F1:renew_failed:1"),
        ("payment.failed", "payment_failed:in_F1:1"),
        ("customer.subscription.updated", f"stripe:{went_past_due}"),
        ("customer.subscription.past_due", "sub:sub_F:past_due:in_F1"),
        ("invoice.paid", "invoice:in_F1:paid"),
        ("customer.subscription.renewed", "invoice:in_F1:renewed"),
        ("payment.succeeded", "payment:in_F1"),
        ("customer.subscription.updated", f"stripe:{back}"),
    }


def _decline(f: StripeFeed, inv: str, sub: str, pi: str, attempt: int) -> str:
    """One declined attempt at a renewal invoice: charge.failed,
    payment_intent.payment_failed, invoice.payment_failed. Returns the invoice event's id."""
    lines = [(BASIC, 1)]
    f.emit("charge.failed", charge(f, pi, 1000, status="failed", invoice_id=inv))
    declined = payment_intent(f, pi, "requires_payment_method", 1000, invoice_id=inv, declined=True)
    f.emit("payment_intent.payment_failed", declined)
    failed = invoice(
        f,
        inv,
        sub_id=sub,
        billing_reason="subscription_cycle",
        status="open",
        lines=lines,
        attempt_count=attempt,
        payment_intent_id=pi,
    )
    return f.emit("invoice.payment_failed", failed)


def renewal_declined_twice(f: StripeFeed) -> set[Fact]:
    """A renewal declined on its first attempt and on Stripe's retry: two declined attempts,
    two payment.failed (the invoice's), never a PaymentIntent's on top."""
    rolled = _renewal_update(f, "sub_S", "in_S1", "in_S0")
    _open_invoice(f, "in_S1", "sub_S", "subscription_cycle", [(BASIC, 1)])
    _decline(f, "in_S1", "sub_S", "pi_S1", 1)
    past_due = subscription(
        f, "sub_S", "past_due", [(BASIC, 1)], period_start=RENEWED_START, latest_invoice="in_S1"
    )
    went_past_due = f.emit("customer.subscription.updated", past_due, {"status": "active"})
    _decline(f, "in_S1", "sub_S", "pi_S1", 2)
    return {
        ("customer.subscription.updated", f"stripe:{rolled}"),
        ("customer.subscription.updated", f"stripe:{went_past_due}"),
        ("customer.subscription.past_due", "sub:sub_S:past_due:in_S1"),
    } | {
        fact
        for n in (1, 2)
        for fact in (
            ("invoice.payment_failed", f"invoice:in_S1:failed:{n}"),
            ("customer.subscription.renew_failed", f"invoice:in_S1:renew_failed:{n}"),
            ("payment.failed", f"payment_failed:in_S1:{n}"),
        )
    }


def one_time_beside_renewal(f: StripeFeed) -> set[Fact]:
    """A renewal paid and, the same minute, a one-time purchase by the same customer (its own
    PaymentIntent, no invoice, another amount): both are payments."""
    updated = _renewal_update(f, "sub_T", "in_T1", "in_T0")
    _open_invoice(f, "in_T1", "sub_T", "subscription_cycle", [(BASIC, 1)])
    f.emit("payment_intent.created", payment_intent(f, "pi_Tx", "requires_payment_method", 4200))
    _pay_invoice(f, "in_T1", "sub_T", "subscription_cycle", [(BASIC, 1)], "pi_T1")
    f.emit("charge.succeeded", charge(f, "pi_Tx", 4200))
    f.emit("payment_intent.succeeded", payment_intent(f, "pi_Tx", "succeeded", 4200))
    return {
        ("customer.subscription.updated", f"stripe:{updated}"),
        ("invoice.paid", "invoice:in_T1:paid"),
        ("customer.subscription.renewed", "invoice:in_T1:renewed"),
        ("payment.succeeded", "payment:in_T1"),
        ("payment_intent.succeeded", "pi:pi_Tx:succeeded"),
        ("payment.succeeded", "payment:pi_Tx"),
    }


def _plan_change(f: StripeFeed, sub: str, old: Obj, new: Obj) -> str:
    now = subscription(f, sub, "active", [(new, 1)])
    before = subscription(f, sub, "active", [(old, 1)])
    previous = {"items": before["items"]}
    if not f.basil:
        previous["plan"] = before["plan"]
    return f.emit("customer.subscription.updated", now, previous)


def upgrade(f: StripeFeed) -> set[Fact]:
    """Basic → Pro with proration invoiced at once (proration_behavior=always_invoice)."""
    updated = _plan_change(f, "sub_G", BASIC, PRO)
    proration = [(price("price_ProrationG", 1500), 1)]
    _open_invoice(f, "in_G2", "sub_G", "subscription_update", proration)
    _pay_invoice(f, "in_G2", "sub_G", "subscription_update", proration, "pi_G2")
    return {
        ("customer.subscription.updated", f"stripe:{updated}"),
        ("customer.subscription.upgraded", f"sub:sub_G:upgraded:{updated}"),
        ("invoice.paid", "invoice:in_G2:paid"),
        ("payment.succeeded", "payment:in_G2"),
    }


def downgrade(f: StripeFeed) -> set[Fact]:
    """Pro monthly ($300/yr) → Basic yearly ($90/yr): a bigger unit amount, yet a downgrade."""
    updated = _plan_change(f, "sub_H", PRO, BASIC_YEARLY)
    return {("customer.subscription.updated", f"stripe:{updated}")}


def scheduled_cancellation_undone(f: StripeFeed) -> set[Fact]:
    """cancel_at_period_end set, then unset before the period ends."""
    lines = [(BASIC, 1)]
    ending = subscription(f, "sub_I", "active", lines, cancel_at_period_end=True)
    scheduled = f.emit(
        "customer.subscription.updated", ending, {"cancel_at_period_end": False, "cancel_at": None}
    )
    kept = subscription(f, "sub_I", "active", lines)
    undone = f.emit(
        "customer.subscription.updated",
        kept,
        {"cancel_at_period_end": True, "cancel_at": ending["cancel_at"]},
    )
    return {
        ("customer.subscription.updated", f"stripe:{scheduled}"),
        ("customer.subscription.updated", f"stripe:{undone}"),
        ("customer.subscription.recovered", f"stripe:{undone}"),
    }


def paused_and_resumed(f: StripeFeed) -> set[Fact]:
    """A trial ends without a payment method (end_behavior: pause), later resumed."""
    lines = [(BASIC, 1)]
    paused = subscription(f, "sub_J", "paused", lines, trial=TRIAL)
    on_pause = f.emit("customer.subscription.paused", paused)
    paused_update = f.emit("customer.subscription.updated", paused, {"status": "trialing"})
    active = subscription(f, "sub_J", "active", lines, trial=TRIAL, period_start=TRIAL[1])
    on_resume = f.emit("customer.subscription.resumed", active)
    resumed_update = f.emit("customer.subscription.updated", active, {"status": "paused"})
    return {
        ("customer.subscription.paused", f"stripe:{on_pause}"),
        ("customer.subscription.updated", f"stripe:{paused_update}"),
        ("customer.subscription.trial_end", f"sub:sub_J:trial_end:{TRIAL[1]}"),
        ("customer.subscription.resumed", f"stripe:{on_resume}"),
        ("customer.subscription.updated", f"stripe:{resumed_update}"),
    }


def canceled(f: StripeFeed) -> set[Fact]:
    """Canceled at period end: the scheduling update, then the deletion."""
    lines = [(BASIC, 1)]
    ending = subscription(f, "sub_K", "active", lines, cancel_at_period_end=True)
    scheduled = f.emit(
        "customer.subscription.updated", ending, {"cancel_at_period_end": False, "cancel_at": None}
    )
    gone = subscription(f, "sub_K", "canceled", lines, cancel_at_period_end=True)
    f.emit("customer.subscription.deleted", gone)
    return {
        ("customer.subscription.updated", f"stripe:{scheduled}"),
        ("customer.subscription.deleted", "sub:sub_K:deleted"),
    }


def zero_dollar_subscription(f: StripeFeed) -> set[Fact]:
    """A 100 % coupon: $0 first invoice and $0 renewal; invoices paid, no money moves."""
    created = subscription(f, "sub_R", "active", [(BASIC, 1)], latest_invoice="in_R0")
    f.emit("customer.subscription.created", created)
    _pay_zero_invoice(f, "in_R0", "sub_R", "subscription_create")
    updated = _renewal_update(f, "sub_R", "in_R1", "in_R0")
    _pay_zero_invoice(f, "in_R1", "sub_R", "subscription_cycle")
    return _sub_facts("sub_R", "created", "started") | {
        ("invoice.paid", "invoice:in_R0:paid"),
        ("customer.subscription.updated", f"stripe:{updated}"),
        ("invoice.paid", "invoice:in_R1:paid"),
        ("customer.subscription.renewed", "invoice:in_R1:renewed"),
    }
