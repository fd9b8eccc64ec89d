"""Stripe lifecycle scenarios (the exact event sequences Stripe sends) with their expected
canonical facts, in both API shapes (basil with and without ``invoice_payment.paid``), and a
reference fold that applies normalized results with the store's own rules (:mod:`bridge.holds`)
in memory.

Exported for the integrator: replay ``SCENARIOS[name].events(*stream)`` through the real store
or the running service and compare with ``.expected(*stream)``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bridge.events import Event
from bridge.holds import (
    HeldRow,
    Hold,
    Known,
    Seen,
    answered_payment_intents,
    decide_hold,
    payment_intents,
    plan_ingest,
)
from bridge.normalized import InvoicePayment, Normalized
from tests.adapters.scenarios import stripe_one_time as one_time
from tests.adapters.scenarios import stripe_subscriptions as subs
from tests.adapters.scenarios.stripe_factories import (
    LEGACY_REFUND_VERSION,
    Fact,
    Obj,
    Shape,
    StripeFeed,
)

__all__ = ["SCENARIOS", "SHAPES", "STREAMS", "Fact", "Scenario", "Stream", "fold"]

SHAPES: tuple[Shape, ...] = ("pre_basil", "basil")
# (shape, whether the endpoint receives invoice_payment.paid): what the stream looks like.
Stream = tuple[Shape, bool]
STREAMS: tuple[Stream, ...] = (("pre_basil", True), ("basil", True), ("basil", False))
STREAM_IDS = ["pre_basil", "basil", "basil-without-invoice_payment"]


class _Memory:
    """The store's PaymentIntent state, in memory, written as the stores write it."""

    def __init__(self) -> None:
        self.kept: dict[Fact, Event] = {}
        self.linked: dict[str, str] = {}
        self.standalone: set[str] = set()
        self.held: dict[int, Hold] = {}
        self.payments: dict[str, tuple[InvoicePayment, float]] = {}
        self.claimed: set[str] = set()
        self._ids = itertools.count(1)

    def keep(self, events: Iterable[Event]) -> None:
        for e in events:
            self.kept.setdefault((e.type, e.dedupe_key), e)

    def ingest(self, n: Normalized, now: float, window_s: float) -> None:
        pis, answered = set(payment_intents(n)), set(answered_payment_intents(n))
        rows = [
            HeldRow(i, h.payment_intent, tuple(h.events))
            for i, h in self.held.items()
            if h.payment_intent in answered
        ]
        known = Known(
            frozenset(self.linked.keys() & pis), frozenset(self.standalone & pis), tuple(rows)
        )
        plan = plan_ingest(n, known, now=now, window_s=window_s, lookups=False)
        for link in plan.links:
            self.linked.setdefault(link.payment_intent, link.invoice)
        self.standalone.update(plan.standalone)
        for i in plan.drop + plan.release:
            del self.held[i]
        for h in plan.holds:
            d, i = h.deferred, next(self._ids)
            self.held[i] = Hold(
                i, d.payment_intent, d.livemode, list(d.events), h.held_at, h.decide_at, 0, d.key
            )
        for p in plan.invoice_payments:
            self.payments.setdefault(p.ref, (p, now))
        self.keep(plan.emit)

    def decide(self, hold: Hold, now: float) -> None:
        invoices = set(self.linked.values())
        seen = [
            Seen(ref, p.invoice, at)
            for ref, (p, at) in self.payments.items()
            if p.key == hold.key and ref not in self.claimed and p.invoice not in invoices
        ]
        pi = hold.payment_intent
        verdict = decide_hold(hold, linked=pi in self.linked, answer=None, seen=seen, now=now)
        if verdict.link is not None:
            self.linked.setdefault(pi, verdict.link.invoice)
            for i in [i for i, h in self.held.items() if h.payment_intent == pi]:
                del self.held[i]
        if verdict.claim is not None:
            self.claimed.add(verdict.claim)
        if verdict.emit:
            self.keep(hold.events)


def fold(results: Iterable[Normalized], window_s: float = 1e6) -> set[Fact]:
    """Apply normalized results like the store with no API key: one per second, all within
    the correlation window; a result seen twice (the same object) is a duplicate provider
    event and is skipped, as the inbox does; then the window ends and every held
    PaymentIntent outcome is decided."""
    memory, seen_results = _Memory(), set[int]()
    now = 0.0
    for result in results:
        if id(result) in seen_results:
            continue
        seen_results.add(id(result))
        now += 1
        memory.ingest(result, now, window_s)
    end = now + window_s
    while memory.held:
        first = min(memory.held)
        memory.decide(memory.held.pop(first), end)
    return set(memory.kept)


@dataclass(frozen=True)
class Scenario:
    """A scenario: ``build`` emits the events into a feed and returns the expected facts."""

    name: str
    build: Callable[[StripeFeed], set[Fact]]
    version_pre_basil: str | None = None  # overrides the feed's pre-basil API version

    def _feed(self, shape: Shape, invoice_payment: bool) -> StripeFeed:
        version = self.version_pre_basil if shape == "pre_basil" else None
        return StripeFeed(shape, version=version, invoice_payment=invoice_payment)

    def events(self, shape: Shape, invoice_payment: bool = True) -> list[Obj]:
        """The whole Stripe events, in the order Stripe sends them."""
        feed = self._feed(shape, invoice_payment)
        self.build(feed)
        return feed.events

    def expected(self, shape: Shape, invoice_payment: bool = True) -> set[Fact]:
        """The canonical facts ``(type, dedupe_key)`` the events must produce."""
        return self.build(self._feed(shape, invoice_payment))


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("subscription_paid_at_once", subs.subscription_paid_at_once),
        Scenario("incomplete_then_active_after_3ds", subs.incomplete_then_active_after_3ds),
        Scenario("trial_that_converts", subs.trial_that_converts),
        Scenario("trial_canceled_before_paying", subs.trial_canceled_before_paying),
        Scenario("renewal_paid", subs.renewal_paid),
        Scenario("renewal_failed_then_paid", subs.renewal_failed_then_paid),
        Scenario("renewal_declined_twice", subs.renewal_declined_twice),
        Scenario("one_time_beside_renewal", subs.one_time_beside_renewal),
        Scenario("upgrade", subs.upgrade),
        Scenario("downgrade", subs.downgrade),
        Scenario("scheduled_cancellation_undone", subs.scheduled_cancellation_undone),
        Scenario("paused_and_resumed", subs.paused_and_resumed),
        Scenario("canceled", subs.canceled),
        Scenario("checkout_one_time_card", one_time.checkout_one_time_card),
        Scenario("checkout_delayed_succeeds", one_time.checkout_delayed_succeeds),
        Scenario("checkout_delayed_fails", one_time.checkout_delayed_fails),
        Scenario("payment_intent_without_checkout", one_time.payment_intent_without_checkout),
        Scenario("full_refund", one_time.full_refund, version_pre_basil=LEGACY_REFUND_VERSION),
        Scenario(
            "partial_refunds", one_time.partial_refunds, version_pre_basil=LEGACY_REFUND_VERSION
        ),
        Scenario("zero_dollar_subscription", subs.zero_dollar_subscription),
    )
}
