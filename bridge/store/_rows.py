"""Row <-> record mapping shared by the SQL stores (same columns on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson

from adapters.base import Normalized
from bridge.catalog import matches_any
from bridge.events import OBJECT_MARK, Event
from bridge.store.base import AttemptRecord, Delivery, DeliveryOutcome, InboxRecord, Subscriber

__all__ = [
    "ATTEMPT_COLUMNS",
    "OBJECT_MARK",
    "SUBSCRIBER_COLUMNS",
    "attempt_from_row",
    "event_from_stored",
    "inbox_status",
    "matching_subscribers",
    "object_json",
    "outcome_row",
    "stored_body",
    "subscriber_from_row",
    "subscriber_params",
]

SUBSCRIBER_COLUMNS = (
    "id, kind, enabled_events, status, url, signature, secret, previous_secret, "
    "previous_secret_expires_at, description, metadata, created_via, livemode, api_version, "
    "created_at, updated_at, failing_since, disabled_reason"
)


def inbox_status(n: Normalized) -> str:
    """The inbox status an ingested event gets from what it means."""
    if n.fetch_related:
        return "pending_fetch"
    return "ignored" if n.produces_nothing else "processed"


def subscriber_params(s: Subscriber) -> tuple[Any, ...]:
    """Values in :data:`SUBSCRIBER_COLUMNS` order."""
    return (
        s.id,
        s.kind,
        orjson.dumps(s.enabled_events).decode(),
        s.status,
        s.url,
        s.signature,
        s.secret,
        s.previous_secret,
        s.previous_secret_expires_at,
        s.description,
        orjson.dumps(s.metadata).decode(),
        s.created_via,
        bool(s.livemode),
        s.api_version,
        s.created_at,
        s.updated_at,
        s.failing_since,
        s.disabled_reason,
    )


def subscriber_from_row(r: Sequence[Any] | Mapping[str, Any]) -> Subscriber:
    """A row selected with :data:`SUBSCRIBER_COLUMNS`."""
    v = list(r.values()) if isinstance(r, Mapping) else list(r)
    return Subscriber(
        id=v[0],
        kind=v[1],
        enabled_events=cast(list[str], orjson.loads(v[2])),
        status=v[3],
        url=v[4],
        signature=v[5],
        secret=v[6],
        previous_secret=v[7],
        previous_secret_expires_at=v[8],
        description=v[9],
        metadata=cast(dict[str, Any], orjson.loads(v[10])) if v[10] else {},
        created_via=v[11],
        livemode=bool(v[12]),
        api_version=v[13],
        created_at=float(v[14]),
        updated_at=float(v[15]),
        failing_since=v[16],
        disabled_reason=v[17],
    )


def matching_subscribers(subscribers: Sequence[Subscriber], event: Event) -> list[str]:
    """Ids of enabled subscribers whose ``enabled_events`` select ``event``."""
    return [
        s.id
        for s in subscribers
        if s.status == "enabled" and matches_any(s.enabled_events, event.type)
    ]


ATTEMPT_COLUMNS = (
    "a.id, a.delivery_id, a.event_id, a.subscriber_id, a.attempt, a.started_at, a.finished_at, "
    "a.outcome, a.status_code, a.duration_ms, a.error, a.response_body, d.status"
)


def attempt_from_row(r: Sequence[Any] | Mapping[str, Any]) -> AttemptRecord:
    """A row selected with ``ATTEMPT_COLUMNS`` (attempts ``a`` joined to deliveries ``d``)."""
    v = list(r.values()) if isinstance(r, Mapping) else list(r)
    return AttemptRecord(
        id=int(v[0]),
        delivery_id=int(v[1]),
        event_id=v[2],
        subscriber_id=v[3],
        attempt=int(v[4]),
        started_at=float(v[5]),
        finished_at=v[6],
        status=v[7],
        status_code=v[8],
        duration_ms=v[9],
        error=v[10],
        response_body=v[11],
        delivery_status=v[12],
    )


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
    new: Sequence[Event], subscribers: Sequence[Subscriber], local: set[str]
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


# -- one copy of the provider object per request ----------------------------------------------
# Most canonical events carry the provider's object as data.object (a subscription event and
# the "started" derived from it: twice the same ~3 KB). The stores keep the raw request in the
# inbox anyway, so an event body is stored with every copy of that object's JSON replaced by
# OBJECT_MARK and a reference to its inbox row, and rebuilt on read. A byte orjson never
# writes (it escapes control characters), so the replacement is exact both ways. Measured:
# the SQLite writer spends ~40 % less time per ingested Stripe event (less to write, copy and
# checkpoint).
_MIN_SHARED = 256  # smaller objects are not worth a look-up


def object_json(payload: Any) -> bytes | None:
    """The orjson bytes of ``payload["data"]["object"]`` (a parsed provider request), or None
    when there is no such object or it is small. Deterministic: the same parsed JSON always
    gives the same bytes, which is what lets :func:`event_from_stored` rebuild a body."""
    data = payload.get("data") if isinstance(payload, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return None
    out = orjson.dumps(obj)
    return out if len(out) >= _MIN_SHARED else None


def stored_body(event: Event, record: InboxRecord | None) -> tuple[bytes, str | None]:
    """What to store for ``event`` ingested with ``record``: ``(body, object_of)``, where
    ``object_of`` names the inbox row (same provider) whose object the body refers to."""
    if record is None or record.object_json is None or event.source != record.provider:
        return event.to_json(), None
    shared = event.shared_object
    if shared is not None and shared[1] is record.object_json:  # Event.share_object
        return shared[0], record.provider_event_id
    body = event.to_json()
    if record.object_json not in body:  # not this request's object, or a changed copy of it
        return body, None
    return body.replace(record.object_json, OBJECT_MARK), record.provider_event_id


def event_from_stored(body: bytes, inbox_payload: bytes | None) -> Event:
    """The event of a stored ``body``; ``inbox_payload``: the raw request of the inbox row the
    body refers to (None when it refers to none).

    Raises:
        ValueError: the body refers to an object its inbox row does not have (a corrupt row).
    """
    body = bytes(body)
    if inbox_payload is not None and OBJECT_MARK in body:
        shared = object_json(orjson.loads(inbox_payload))
        if shared is None:
            raise ValueError("stored event refers to an inbox row without its object")
        body = body.replace(OBJECT_MARK, shared)
    return Event.from_wire(body)


def outcome_row(outcome: DeliveryOutcome, now: float) -> tuple[str, float]:
    """A delivery's new ``(status, next_attempt_at)`` after an attempt with ``outcome``."""
    if outcome.delivered:
        return "delivered", now
    if outcome.next_attempt_at is None:
        return "dead", now
    return "pending", outcome.next_attempt_at
