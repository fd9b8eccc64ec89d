"""What to store, decided in plain Python (no I/O) and persisted as decided by each backend:
the inbox status of a request, which subscriber gets which new event, the deliveries handed
back leased, a delivery's row after an attempt."""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

from bridge.catalog import matches_any
from bridge.events import Event
from bridge.normalized import Normalized
from bridge.store.base import Delivery, DeliveryOutcome, Subscriber

__all__ = [
    "PlannedDelivery",
    "inbox_status",
    "leased_deliveries",
    "matching_subscribers",
    "new_in_order",
    "outcome_row",
    "plan_deliveries",
]


def inbox_status(n: Normalized) -> str:
    """The inbox status an ingested event gets from what it means."""
    if n.fetch_related:
        return "pending_fetch"
    return "ignored" if n.produces_nothing else "processed"


def matching_subscribers(subscribers: Sequence[Subscriber], event: Event) -> list[str]:
    """Ids of enabled subscribers whose ``enabled_events`` select ``event``."""
    return [
        s.id
        for s in subscribers
        if s.status == "enabled" and matches_any(s.enabled_events, event.type)
    ]


def new_in_order(events: Sequence[Event], inserted_ids: set[str]) -> list[Event]:
    """The events an insert reported new (``inserted_ids``), in their given order; the same
    fact twice in one call is one new event."""
    left = set(inserted_ids)
    new: list[Event] = []
    for ev in events:
        if ev.id in left:
            left.discard(ev.id)
            new.append(ev)
    return new


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """A delivery row to insert for a new event."""

    event: Event
    subscriber_id: str
    leased: bool  # this instance sends it: an endpoint, or one of its own handlers
    first_attempt: bool  # a leased endpoint delivery: its first attempt is recorded at ingest


def plan_deliveries(
    new: Sequence[Event], subscribers: Sequence[Subscriber], local: Set[str]
) -> list[PlannedDelivery]:
    """One delivery per (new event, matching enabled subscriber)."""
    plan: list[PlannedDelivery] = []
    for ev in new:
        for sid in matching_subscribers(subscribers, ev):
            handler = sid.startswith("handler:")
            leased = not handler or sid[len("handler:") :] in local
            plan.append(PlannedDelivery(ev, sid, leased, leased and not handler))
    return plan


def leased_deliveries(
    plan: Sequence[PlannedDelivery],
    ids: Mapping[tuple[str, str], int],
    attempt_ids: Mapping[int, int],
    now: float,
) -> list[Delivery]:
    """The deliveries ingest hands back to its instance: ``ids`` maps (event id, subscriber id)
    to the delivery row, ``attempt_ids`` a delivery row to its recorded first attempt."""
    out: list[Delivery] = []
    for p in plan:
        if not p.leased:
            continue
        did = ids[(p.event.id, p.subscriber_id)]
        aid = attempt_ids.get(did) if p.first_attempt else None
        attempts = 1 if aid is not None else 0
        out.append(Delivery(did, p.event, p.subscriber_id, attempts, now, "pending", now, aid))
    return out


def outcome_row(outcome: DeliveryOutcome, now: float) -> tuple[str, float]:
    """A delivery's new ``(status, next_attempt_at)`` after an attempt with ``outcome``."""
    if outcome.delivered:
        return "delivered", now
    if outcome.next_attempt_at is None:
        return "dead", now
    return "pending", outcome.next_attempt_at
