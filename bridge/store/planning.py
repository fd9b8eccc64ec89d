"""What to store, decided in plain Python (no I/O) and persisted as decided by each backend:
the inbox status of a request, which subscriber gets which new event, the deliveries handed
back leased, a delivery's and an attempt's row after an attempt, a subscriber's failure streak,
who a claim or a resend may serve, a page of subscribers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Literal

from bridge.catalog import matches_any
from bridge.events import Event
from bridge.normalized import Normalized
from bridge.store.base import Delivery, DeliveryOutcome, Page, Subscriber, SubscriberKind

__all__ = [
    "RESPONSE_BODY_MAX",
    "AttemptRow",
    "PlannedDelivery",
    "StreakUpdate",
    "attempt_row",
    "claimable",
    "inbox_status",
    "leased_deliveries",
    "matching_subscribers",
    "new_in_order",
    "outcome_row",
    "plan_deliveries",
    "resend_targets",
    "streak_update",
    "subscriber_page",
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


RESPONSE_BODY_MAX = 1024  # characters of a receiver's answer kept with its attempt


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """An attempt's columns after it finished with some outcome."""

    outcome: Literal["succeeded", "failed"]
    status_code: int | None
    duration_ms: float
    error: str | None
    response_body: str | None


def attempt_row(outcome: DeliveryOutcome) -> AttemptRow:
    """What a finished attempt stores: its outcome, and at most :data:`RESPONSE_BODY_MAX`
    characters of the answer."""
    body = outcome.response_body
    return AttemptRow(
        "succeeded" if outcome.delivered else "failed",
        outcome.status_code,
        outcome.duration_ms,
        outcome.error,
        body[:RESPONSE_BODY_MAX] if body is not None else None,
    )


@dataclass(frozen=True, slots=True)
class StreakUpdate:
    """A subscriber's new failure streak start, and the reason it is disabled now (None:
    its status stays)."""

    failing_since: float | None
    disabled_reason: str | None = None


def streak_update(
    sub: Subscriber, outcome: DeliveryOutcome, now: float, limit_s: float
) -> StreakUpdate | None:
    """How an attempt's ``outcome`` changes ``sub``'s failure streak (None: not at all). A
    success ends the streak; a failure starts it, and an enabled endpoint failing for
    ``limit_s`` straight is disabled; an outcome that says so disables at once."""
    if outcome.delivered:
        return StreakUpdate(None) if sub.failing_since is not None else None
    if outcome.disable_endpoint:
        return StreakUpdate(sub.failing_since, outcome.disable_endpoint)
    since = sub.failing_since if sub.failing_since is not None else now
    if sub.kind == "endpoint" and sub.status == "enabled" and since <= now - limit_s:
        return StreakUpdate(since, f"failing for {limit_s:.0f}s straight")
    return StreakUpdate(since) if sub.failing_since is None else None


def claimable(
    subscribers: Sequence[Subscriber], handlers: Sequence[str], exclude: Sequence[str]
) -> list[str]:
    """Ids of the subscribers whose due deliveries a claim may take: enabled endpoints and
    the enabled handlers named in ``handlers``, less ``exclude``."""
    return [
        s.id
        for s in subscribers
        if s.status == "enabled"
        and s.id not in exclude
        and (s.kind == "endpoint" or s.id[len("handler:") :] in handlers)
    ]


def resend_targets(
    subscribers: Sequence[Subscriber], event: Event, subscriber_id: str | None
) -> list[str]:
    """Who a resend of ``event`` goes to: ``subscriber_id``, or every enabled endpoint whose
    ``enabled_events`` select it."""
    if subscriber_id is not None:
        return [subscriber_id]
    return matching_subscribers([s for s in subscribers if s.kind == "endpoint"], event)


def subscriber_page(
    subscribers: Sequence[Subscriber],
    kind: SubscriberKind | None,
    livemode: bool | None,
    offset: int,
    limit: int,
) -> Page[Subscriber]:
    """One page of subscribers, newest first then by id, filtered by kind and livemode."""
    chosen = [
        s
        for s in sorted(subscribers, key=lambda s: (-s.created_at, s.id))
        if (kind is None or s.kind == kind) and (livemode is None or s.livemode == livemode)
    ]
    return Page(len(chosen), chosen[offset : offset + limit])
