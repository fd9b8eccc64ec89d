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

from bridge.errors import UnknownEventTypeError

__all__ = [
    "CATALOG",
    "EventSpec",
    "is_known",
    "matches",
    "matches_any",
    "validate_pattern",
    "validate_patterns",
]

Origin = Literal["both", "stripe", "payment_kit"]


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One canonical type: its name, what it means, and which providers produce it."""

    type: str
    description: str
    origin: Origin = "both"


def _specs(origin: Origin, *rows: tuple[str, str]) -> list[EventSpec]:
    return [EventSpec(t, d, origin) for t, d in rows]


# Produced from Stripe (by the rules in docs/events.md) and passed through from Payment Kit.
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
    ("checkout.session.async_payment_succeeded", "A delayed Checkout payment succeeded"),
    ("checkout.session.nft_minted", "The NFT of a Checkout session was minted"),
    ("coupon.created", "A coupon was created"),
    ("coupon.updated", "A coupon was updated"),
    ("coupon.deleted", "A coupon was deleted"),
    ("customer.created", "A customer was created"),
    ("customer.updated", "A customer was updated"),
    ("customer.deleted", "A customer was deleted"),
    ("customer.discount.created", "A discount was applied to a customer"),
    ("customer.discount.updated", "A customer's discount changed"),
    ("customer.discount.deleted", "A customer's discount was removed"),
    ("customer.subscription.will_renew", "A subscription renews soon"),
    ("customer.subscription.will_canceled", "A subscription will be canceled soon"),
    ("customer.subscription.upcoming", "A subscription has an upcoming invoice"),
    ("customer.subscription.pending_update_applied", "A pending subscription update applied"),
    ("customer.subscription.pending_update_expired", "A pending subscription update expired"),
    ("customer.credit.insufficient", "A customer's credit is insufficient"),
    ("customer.credit.low_balance", "A customer's credit balance is low"),
    ("customer.credit_grant.granted", "A credit grant was granted"),
    ("customer.credit_grant.depleted", "A credit grant was used up"),
    ("customer.credit_grant.expired", "A credit grant expired"),
    ("customer.credit_grant.low_balance", "A credit grant's balance is low"),
    ("subscription.stake.slash.succeeded", "A subscription's stake was slashed"),
    ("subscription_schedule.created", "A subscription schedule was created"),
    ("subscription_schedule.updated", "A subscription schedule was updated"),
    ("subscription_schedule.expiring", "A subscription schedule ends soon"),
    ("subscription_schedule.completed", "A subscription schedule completed"),
    ("subscription_schedule.released", "A subscription schedule was released"),
    ("subscription_schedule.canceled", "A subscription schedule was canceled"),
    ("subscription_schedule.aborted", "A subscription schedule was aborted"),
    ("invoice.created", "An invoice was created"),
    ("invoice.finalized", "An invoice was finalized"),
    ("invoice.finalization_failed", "An invoice could not be finalized"),
    ("invoice.updated", "An invoice was updated"),
    ("invoice.sent", "An invoice was sent"),
    ("invoice.payment_succeeded", "An invoice payment succeeded (Payment Kit passthrough)"),
    ("invoice.voided", "An invoice was voided"),
    ("invoice.deleted", "A draft invoice was deleted"),
    ("invoice.marked_uncollectible", "An invoice was marked uncollectible"),
    ("invoice.upcoming", "An invoice is upcoming"),
    ("invoiceitem.created", "An invoice item was created"),
    ("invoiceitem.deleted", "An invoice item was deleted"),
    ("payment_intent.created", "A payment intent was created"),
    ("payment_intent.canceled", "A payment intent was canceled"),
    ("payment_intent.processing", "A payment intent is processing"),
    ("payment_intent.requires_action", "A payment intent requires customer action"),
    ("payment_intent.amount_capturable_updated", "A payment intent's capturable amount changed"),
    ("payment_intent.partially_funded", "A payment intent was partially funded"),
    ("payment_link.created", "A payment link was created"),
    ("payment_link.updated", "A payment link was updated"),
    ("payment_method.attached", "A payment method was attached to a customer"),
    ("payment_method.automatically_updated", "A payment method was updated automatically"),
    ("payment_method.detached", "A payment method was detached from a customer"),
    ("payment_method.updated", "A payment method was updated"),
    ("payout.created", "A payout was created"),
    ("payout.updated", "A payout was updated"),
    ("payout.paid", "A payout was paid"),
    ("payout.failed", "A payout failed"),
    ("payout.canceled", "A payout was canceled"),
    ("payout.reconciliation_completed", "A payout's reconciliation completed"),
    ("price.created", "A price was created"),
    ("price.updated", "A price was updated"),
    ("price.deleted", "A price was deleted"),
    ("product.created", "A product was created"),
    ("product.updated", "A product was updated"),
    ("product.deleted", "A product was deleted"),
    ("promotion_code.created", "A promotion code was created"),
    ("promotion_code.updated", "A promotion code was updated"),
    ("refund.created", "A refund was created"),
    ("refund.updated", "A refund was updated"),
    ("refund.canceled", "A refund was canceled"),
    ("setup_intent.created", "A setup intent was created"),
    ("setup_intent.requires_action", "A setup intent requires customer action"),
    ("setup_intent.succeeded", "A setup intent succeeded"),
    ("setup_intent.setup_failed", "A setup intent failed"),
    ("setup_intent.canceled", "A setup intent was canceled"),
    ("tax_rate.created", "A tax rate was created"),
    ("tax_rate.updated", "A tax rate was updated"),
    ("billing.discrepancy", "A billing discrepancy was detected"),
    ("usage.report.empty", "A usage report was empty"),
    ("exchange_rate.providers_unavailable", "No exchange rate provider is available"),
    ("exchange_rate.spread_exceeded", "Exchange rate providers disagree beyond the spread"),
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
