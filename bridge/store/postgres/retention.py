"""PostgreSQL store, retention: runs one window of :func:`bridge.store.retention.prune_window`
in one transaction, with the SQL below for each statement it asks for."""

from __future__ import annotations

from typing import Any

from bridge.store.postgres.pool import PgPool
from bridge.store.retention import Cutoffs, PruneCounts, PruneCursor, Walk, prune_window

__all__ = ["PgRetention"]

_MARKS = ("pi_links", "pi_standalone")
_DELIVERY = "SELECT id, event_id, subscriber_id, status FROM deliveries"
_SQL = {
    "subscribers": "SELECT id FROM subscribers",
    "attempts_window": (
        "SELECT id, started_at, delivery_id FROM attempts WHERE id > $1 ORDER BY id LIMIT $2"
    ),
    "deliveries_beside": (
        f"{_DELIVERY} WHERE event_id IN"
        " (SELECT event_id FROM deliveries WHERE id = ANY($1::bigint[]))"
    ),
    "delete_attempts": "DELETE FROM attempts WHERE id = ANY($1::bigint[])",
    "events_window": (
        "SELECT seq, id, stored_at, length(body) = 0 FROM events WHERE seq > $1"
        " ORDER BY seq LIMIT $2"
    ),
    "deliveries_of_events": f"{_DELIVERY} WHERE event_id = ANY($1::text[])",
    "count_attempts_of_events": "SELECT COUNT(*) FROM attempts WHERE event_id = ANY($1::text[])",
    "delete_attempts_of_events": "DELETE FROM attempts WHERE event_id = ANY($1::text[])",
    "delete_deliveries_of_events": "DELETE FROM deliveries WHERE event_id = ANY($1::text[])",
    "delete_events": "DELETE FROM events WHERE seq = ANY($1::bigint[])",
    "stub_events": (
        "UPDATE events SET body = ''::bytea, object_of = NULL WHERE seq = ANY($1::bigint[])"
    ),
    "inbox_window": (
        "SELECT seq, received_at, status, EXISTS (SELECT 1 FROM events e"
        " WHERE e.object_of = inbox.provider_event_id AND e.source = inbox.provider)"
        " FROM inbox WHERE seq > $1 ORDER BY seq LIMIT $2"
    ),
    "delete_inbox": "DELETE FROM inbox WHERE seq = ANY($1::bigint[])",
    **{
        f"{t}_window": (
            f"SELECT seq, created_at, EXISTS (SELECT 1 FROM deferred d"
            f" WHERE d.payment_intent = {t}.payment_intent)"
            f" FROM {t} WHERE seq > $1 ORDER BY seq LIMIT $2"
        )
        for t in _MARKS
    },
    **{
        f"delete_{t}": (
            f"DELETE FROM {t} WHERE seq = ANY($1::bigint[]) AND NOT EXISTS (SELECT 1"
            f" FROM deferred d WHERE d.payment_intent = {t}.payment_intent)"
        )
        for t in _MARKS
    },
}


async def _run(conn: Any, walk: Walk) -> tuple[PruneCounts, PruneCursor | None]:
    try:
        step = next(walk)
        while True:
            if step.read:
                result: Any = [tuple(r) for r in await conn.fetch(_SQL[step.op], *step.params)]
            else:  # "DELETE 12", "UPDATE 3"
                result = int((await conn.execute(_SQL[step.op], *step.params)).split()[-1])
            step = walk.send(result)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


class PgRetention:
    """The retention part of the PostgreSQL store: small transactions (one window each) on
    the bookkeeping pool, so no delete holds locks for long."""

    def __init__(self, db: PgPool) -> None:
        self._db = db

    async def prune(
        self, c: Cutoffs, cursor: PruneCursor, limit: int, dry_run: bool
    ) -> tuple[PruneCounts, PruneCursor | None]:
        async with self._db.tx(durable=False) as conn:
            return await _run(conn, prune_window(c, cursor, limit, dry_run))
