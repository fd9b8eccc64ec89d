"""Row <-> record mapping shared by the SQL stores (the same columns on SQLite and
PostgreSQL)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import orjson

from bridge.store.base import AttemptRecord, Subscriber

__all__ = [
    "ATTEMPT_COLUMNS",
    "SUBSCRIBER_COLUMNS",
    "attempt_from_row",
    "subscriber_from_row",
    "subscriber_params",
]

SUBSCRIBER_COLUMNS = (
    "id, kind, enabled_events, status, url, signature, secret, previous_secret, "
    "previous_secret_expires_at, description, metadata, created_via, livemode, api_version, "
    "created_at, updated_at, failing_since, disabled_reason"
)


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
