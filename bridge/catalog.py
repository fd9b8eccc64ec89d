"""The event catalog: the one source of truth for canonical event types.

Used by the bus (registration checks), the config and the admin API (``enabled_events``),
the openevent document and the docs test. Types use Payment Kit's vocabulary.

A *pattern* is a catalog type, ``*`` (everything) or a family wildcard such as
``customer.subscription.*`` (every type that starts with ``customer.subscription.``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CATALOG",
    "EventSpec",
    "UnknownEventTypeError",
    "is_known",
    "matches",
    "matches_any",
    "validate_pattern",
    "validate_patterns",
]

Origin = Literal["both", "stripe", "payment_kit"]


class UnknownEventTypeError(ValueError):
    """A type or pattern that names nothing in the catalog."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        super().__init__(f"unknown event type {pattern!r}: not in the paybridge catalog")


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One canonical type: its name, what it means, and which providers produce it."""

    type: str
    description: str
    origin: Origin = "both"


def _specs(origin: Origin, *rows: tuple[str, str]) -> list[EventSpec]:
    return [EventSpec(t, d, origin) for t, d in rows]


# Produced from Stripe (by the rules of EVENTS.md) and passed through from Payment Kit.
_NORMALIZED = _specs(
    "both",
    (
        "checkout.session.completed",
        "A Checkout session completed, paid (or needing no payment)",
    ),
    ("checkout.session.async_payment_failed", "A delayed Checkout payment method failed"),
    ("checkout.session.expired", "A Checkout session expired unpaid"),
    ("customer.subscription.created", "A subscription was created"),
    ("customer.subscription.started", "A subscription became live (active or trialing) first"),
    ("customer.subscription.trial_start", "A subscription's trial started"),
    ("customer.subscription.trial_will_end", "A subscription's trial ends soon"),
    ("customer.subscription.trial_end", "A subscription's trial ended"),
    ("customer.subscription.renewed", "A renewal invoice of a subscription was paid"),
    ("customer.subscription.renew_failed", "A renewal payment of a subscription failed"),
    ("customer.subscription.upgraded", "A subscription moved to a higher recurring amount"),
    ("customer.subscription.updated", "A subscription changed (raw passthrough)"),
    ("customer.subscription.past_due", "A subscription became past due"),
    ("customer.subscription.recovered", "A scheduled cancellation was undone"),
    ("customer.subscription.paused", "A subscription was paused"),
    ("customer.subscription.resumed", "A subscription was resumed"),
    ("customer.subscription.deleted", "A subscription was canceled and ended"),
    ("invoice.paid", "An invoice was paid (any amount, out-of-band and $0 included)"),
    ("invoice.payment_failed", "An invoice payment attempt failed"),
    ("invoice.payment_action_required", "An invoice payment needs the customer (3-D Secure)"),
    ("payment_intent.succeeded", "A payment that pays no invoice succeeded"),
    ("payment_intent.payment_failed", "A payment that pays no invoice failed"),
    ("refund.succeeded", "A refund succeeded"),
    ("payment.succeeded", "paybridge: one per money movement that succeeded"),
    ("payment.failed", "paybridge: one per money movement attempt that failed"),
)

# Payment Kit's own types (no Stripe rule produces them); they pass through when well-formed.
_PAYMENT_KIT = _specs(
    "payment_kit",
    ("checkout.session.created", "A Checkout session was created"),
    ("checkout.session.nft_minted", "The NFT of a Checkout session was minted"),
    ("customer.created", "A customer was created"),
    ("customer.updated", "A customer was updated"),
    ("customer.deleted", "A customer was deleted"),
    ("customer.subscription.will_renew", "A subscription renews soon"),
    ("customer.subscription.will_canceled", "A subscription will be canceled soon"),
    ("customer.subscription.upcoming", "A subscription has an upcoming invoice"),
    ("customer.credit.insufficient", "A customer's credit is insufficient"),
    ("customer.credit.low_balance", "A customer's credit balance is low"),
    ("customer.credit_grant.granted", "A credit grant was granted"),
    ("customer.credit_grant.depleted", "A credit grant was used up"),
    ("customer.credit_grant.expired", "A credit grant expired"),
    ("customer.credit_grant.low_balance", "A credit grant's balance is low"),
    ("invoice.created", "An invoice was created"),
    ("invoice.finalized", "An invoice was finalized"),
    ("invoice.updated", "An invoice was updated"),
    ("invoice.voided", "An invoice was voided"),
    ("invoice.marked_uncollectible", "An invoice was marked uncollectible"),
    ("invoice.upcoming", "An invoice is upcoming"),
    ("payment_intent.created", "A payment intent was created"),
    ("payment_intent.canceled", "A payment intent was canceled"),
    ("payment_intent.processing", "A payment intent is processing"),
    ("payment_intent.requires_action", "A payment intent requires customer action"),
    ("payment_link.created", "A payment link was created"),
    ("payment_link.updated", "A payment link was updated"),
    ("payout.created", "A payout was created"),
    ("payout.paid", "A payout was paid"),
    ("refund.created", "A refund was created"),
    ("refund.updated", "A refund was updated"),
    ("refund.canceled", "A refund was canceled"),
    ("billing.discrepancy", "A billing discrepancy was detected"),
    ("usage.report.empty", "A usage report was empty"),
    ("exchange_rate.updated", "An exchange rate was updated"),
    ("exchange_rate.failed", "An exchange rate update failed"),
    ("manual.notification", "A manual notification"),
)

CATALOG: dict[str, EventSpec] = {s.type: s for s in (*_NORMALIZED, *_PAYMENT_KIT)}


def is_known(event_type: str) -> bool:
    """True when ``event_type`` is a catalog type."""
    return event_type in CATALOG


def validate_pattern(pattern: str) -> str:
    """Return ``pattern`` when it is a catalog type, ``*`` or a family wildcard that matches at
    least one catalog type; raise :class:`UnknownEventTypeError` otherwise."""
    if pattern == "*" or pattern in CATALOG:
        return pattern
    if pattern.endswith(".*"):
        prefix = pattern[:-1]
        if any(t.startswith(prefix) for t in CATALOG):
            return pattern
    raise UnknownEventTypeError(pattern)


def validate_patterns(patterns: Iterable[str]) -> list[str]:
    """Validate every pattern (see :func:`validate_pattern`); keep their order, drop repeats."""
    seen: dict[str, None] = {}
    for p in patterns:
        seen[validate_pattern(p)] = None
    return list(seen)


def matches(pattern: str, event_type: str) -> bool:
    """True when ``event_type`` is selected by ``pattern``."""
    if pattern == "*" or pattern == event_type:
        return True
    return pattern.endswith(".*") and event_type.startswith(pattern[:-1])


def matches_any(patterns: Iterable[str], event_type: str) -> bool:
    """True when any pattern selects ``event_type``."""
    return any(matches(p, event_type) for p in patterns)
