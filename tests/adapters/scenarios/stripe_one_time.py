"""One-time payment and refund scenarios: the events Stripe sends, in order, and their facts."""

from __future__ import annotations

from tests.adapters.scenarios.stripe_factories import (
    GADGET,
    Fact,
    StripeFeed,
    charge,
    checkout_session,
    payment_intent,
    refund,
)

__all__ = [
    "checkout_delayed_fails",
    "checkout_delayed_succeeds",
    "checkout_one_time_card",
    "full_refund",
    "partial_refunds",
    "payment_intent_without_checkout",
]


def _one_time_paid(pi: str) -> set[Fact]:
    return {
        ("payment_intent.succeeded", f"pi:{pi}:succeeded"),
        ("payment.succeeded", f"payment:{pi}"),
    }


def _card_payment(f: StripeFeed, pi: str) -> None:
    f.emit("payment_intent.created", payment_intent(f, pi, "requires_payment_method", GADGET))
    f.emit("charge.succeeded", charge(f, pi, GADGET))
    f.emit("payment_intent.succeeded", payment_intent(f, pi, "succeeded", GADGET))


def checkout_one_time_card(f: StripeFeed) -> set[Fact]:
    """Checkout in payment mode, paid by card."""
    _card_payment(f, "pi_L")
    f.emit(
        "checkout.session.completed",
        checkout_session("cs_L", "payment", "paid", amount=GADGET, pi_id="pi_L"),
    )
    return _one_time_paid("pi_L") | {("checkout.session.completed", "checkout:cs_L:completed")}


def checkout_delayed_succeeds(f: StripeFeed) -> set[Fact]:
    """Checkout with a delayed method (e.g. SEPA debit): completed unpaid, then succeeded."""
    unpaid = checkout_session("cs_M", "payment", "unpaid", amount=GADGET, pi_id="pi_M")
    f.emit("checkout.session.completed", unpaid)
    f.emit("payment_intent.processing", payment_intent(f, "pi_M", "processing", GADGET))
    f.emit("charge.succeeded", charge(f, "pi_M", GADGET))
    f.emit("payment_intent.succeeded", payment_intent(f, "pi_M", "succeeded", GADGET))
    paid = checkout_session("cs_M", "payment", "paid", amount=GADGET, pi_id="pi_M")
    f.emit("checkout.session.async_payment_succeeded", paid)
    return _one_time_paid("pi_M") | {("checkout.session.completed", "checkout:cs_M:completed")}


def checkout_delayed_fails(f: StripeFeed) -> set[Fact]:
    """Checkout with a delayed method that fails days later."""
    unpaid = checkout_session("cs_N", "payment", "unpaid", amount=GADGET, pi_id="pi_N")
    f.emit("checkout.session.completed", unpaid)
    f.emit("payment_intent.processing", payment_intent(f, "pi_N", "processing", GADGET))
    f.emit("charge.failed", charge(f, "pi_N", GADGET, status="failed"))
    declined = payment_intent(f, "pi_N", "requires_payment_method", GADGET, declined=True)
    failed = f.emit("payment_intent.payment_failed", declined)
    f.emit("checkout.session.async_payment_failed", unpaid)
    return {
        ("checkout.session.async_payment_failed", "checkout:cs_N:failed"),
        ("payment_intent.payment_failed", f"stripe:{failed}"),
        ("payment.failed", f"payment_failed:pi_N:{failed}"),
    }


def payment_intent_without_checkout(f: StripeFeed) -> set[Fact]:
    """A PaymentIntent confirmed by the app's own form (no Checkout, no invoice)."""
    _card_payment(f, "pi_O")
    return _one_time_paid("pi_O")


def full_refund(f: StripeFeed) -> set[Fact]:
    """A one-time payment refunded in full. Pre-basil here is 2022-08-01 (charge.refunded
    embeds the refunds); basil sends charge.refunded without them, plus refund.created."""
    _card_payment(f, "pi_P")
    re = refund("re_P1", "pi_P", GADGET)
    if f.basil:
        f.emit("charge.refunded", charge(f, "pi_P", GADGET, amount_refunded=GADGET))
        f.emit("refund.created", re)
    else:
        f.emit("charge.refunded", charge(f, "pi_P", GADGET, refunds=[re]))
    return _one_time_paid("pi_P") | {("refund.succeeded", "refund:re_P1:succeeded")}


def partial_refunds(f: StripeFeed) -> set[Fact]:
    """Two partial refunds of one payment (the second one pending first under basil)."""
    _card_payment(f, "pi_Q")
    first, second = refund("re_Q1", "pi_Q", 1000), refund("re_Q2", "pi_Q", 500)
    if f.basil:
        f.emit("charge.refunded", charge(f, "pi_Q", GADGET, amount_refunded=1000))
        f.emit("refund.created", first)
        f.emit("charge.refunded", charge(f, "pi_Q", GADGET, amount_refunded=1500))
        f.emit("refund.created", refund("re_Q2", "pi_Q", 500, status="pending"))
        f.emit("refund.updated", second, {"status": "pending"})
    else:
        f.emit("charge.refunded", charge(f, "pi_Q", GADGET, refunds=[first]))
        f.emit("charge.refunded", charge(f, "pi_Q", GADGET, refunds=[second, first]))
    return _one_time_paid("pi_Q") | {
        ("refund.succeeded", "refund:re_Q1:succeeded"),
        ("refund.succeeded", "refund:re_Q2:succeeded"),
    }
