"""Stripe lifecycle scenarios (the exact event sequences Stripe sends) with their expected
canonical facts, in both API shapes, and a tiny reference fold that applies normalized
results the way the store does.

Exported for the integrator: replay ``SCENARIOS[name].events(shape)`` through the real store
or the running service and compare with ``.expected(shape)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from adapters.base import Deferred, Normalized
from bridge.events import Event
from tests.adapters.scenarios import stripe_one_time as one_time
from tests.adapters.scenarios import stripe_subscriptions as subs
from tests.adapters.scenarios.stripe_factories import (
    LEGACY_REFUND_VERSION,
    Fact,
    Obj,
    Shape,
    StripeFeed,
)

__all__ = ["SCENARIOS", "SHAPES", "Fact", "Scenario", "fold"]

SHAPES: tuple[Shape, ...] = ("pre_basil", "basil")


def fold(results: Iterable[Normalized]) -> set[Fact]:
    """Apply normalized results like the store: the first event per fact (type, dedupe_key)
    wins, links are collected, and deferred PaymentIntent events are emitted at the end (the
    correlation window has elapsed) only when no link for their PI was seen."""
    kept: dict[tuple[str, str], Event] = {}
    linked: set[str] = set()
    held: list[Deferred] = []
    for result in results:
        for event in result.events:
            kept.setdefault((event.type, event.dedupe_key), event)
        linked.update(link.payment_intent for link in result.links)
        held.extend(result.deferred)
    for deferred in held:
        if deferred.payment_intent not in linked:
            for event in deferred.events:
                kept.setdefault((event.type, event.dedupe_key), event)
    return {(e.type, e.dedupe_key) for e in kept.values()}


@dataclass(frozen=True)
class Scenario:
    """A scenario: ``build`` emits the events into a feed and returns the expected facts."""

    name: str
    build: Callable[[StripeFeed], set[Fact]]
    version_pre_basil: str | None = None  # overrides the feed's pre-basil API version

    def _feed(self, shape: Shape) -> StripeFeed:
        version = self.version_pre_basil if shape == "pre_basil" else None
        return StripeFeed(shape, version=version)

    def events(self, shape: Shape) -> list[Obj]:
        """The whole Stripe events, in the order Stripe sends them."""
        feed = self._feed(shape)
        self.build(feed)
        return feed.events

    def expected(self, shape: Shape) -> set[Fact]:
        """The canonical facts ``(type, dedupe_key)`` the events must produce."""
        return self.build(self._feed(shape))


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("subscription_paid_at_once", subs.subscription_paid_at_once),
        Scenario("incomplete_then_active_after_3ds", subs.incomplete_then_active_after_3ds),
        Scenario("trial_that_converts", subs.trial_that_converts),
        Scenario("trial_canceled_before_paying", subs.trial_canceled_before_paying),
        Scenario("renewal_paid", subs.renewal_paid),
        Scenario("renewal_failed_then_paid", subs.renewal_failed_then_paid),
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
