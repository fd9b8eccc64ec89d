"""PostgreSQL store, the read side: events (bodies rebuilt around their inbox row's object),
attempts, counts, and the console's keyset pages and overview (:mod:`bridge.store.browse`)."""

from __future__ import annotations

from bridge.events import Event
from bridge.store.base import (
    ActivityBucket,
    AttemptRecord,
    EventQuery,
    EventSlice,
    InboxRecord,
    Page,
    StoreOverview,
)
from bridge.store.bodies import event_from_stored
from bridge.store.browse import activity_buckets, event_page_sql, event_slice
from bridge.store.postgres.pool import PgPool
from bridge.store.rows import ATTEMPT_COLUMNS, attempt_from_row

__all__ = ["EVENT_SQL", "LIVE", "PgReads"]

# Events that are not stubs (ids kept by retention, see bridge.store.retention).
LIVE = "WHERE length(e.body) > 0"
# An event's stored body and the raw request whose object it refers to (if any).
EVENT_SQL = (
    "SELECT e.body, i.payload FROM events e LEFT JOIN inbox i"
    " ON i.provider = e.source AND i.provider_event_id = e.object_of"
)

_COUNTS = """
SELECT
    (SELECT COUNT(*) FROM inbox) AS inbox,
    (SELECT COUNT(*) FROM inbox WHERE status = 'ignored') AS ignored,
    (SELECT COUNT(*) FROM events WHERE length(body) > 0) AS events,
    (SELECT COUNT(*) FROM deliveries WHERE status = 'pending') AS pending,
    (SELECT COUNT(*) FROM deliveries WHERE status = 'dead') AS dead,
    (SELECT COUNT(*) FROM deferred) AS held,
    (SELECT COUNT(*) FROM inbox WHERE status = 'pending_fetch') AS pending_fetch
"""

_OVERVIEW = """
SELECT
    (SELECT COUNT(*) FROM events WHERE created >= $1) AS events,
    (SELECT COUNT(*) FROM deliveries WHERE status = 'pending') AS pending,
    (SELECT COUNT(*) FROM deliveries WHERE status = 'dead') AS dead,
    (SELECT MIN(created_at) FROM deliveries WHERE status = 'pending') AS oldest
"""
_ACTIVITY_EVENTS = (
    "SELECT ((created - $1) / $2)::int AS b, COUNT(*) FROM events"
    " WHERE created >= $1 AND created < $3 GROUP BY b"
)
_ACTIVITY_FAILED = (
    "SELECT floor((started_at - $1) / $2)::int AS b, COUNT(*) FROM attempts"
    " WHERE outcome = 'failed' AND started_at >= $1 AND started_at < $3 GROUP BY b"
)


class PgReads:
    """The read part of the PostgreSQL store."""

    def __init__(self, db: PgPool) -> None:
        self._db = db

    async def list_events(self, type: str | None, offset: int, limit: int | None) -> Page[Event]:
        """Newest first; ``limit=None`` lists them all; raises :class:`StoreError`."""
        where, args = (f"{LIVE} AND e.type = $1", [type]) if type else (LIVE, [])
        n = len(args)
        async with self._db.conn() as conn:
            count = await conn.fetchval(f"SELECT COUNT(*) FROM events e {where}", *args)
            rows = await conn.fetch(
                f"{EVENT_SQL} {where} ORDER BY e.seq DESC LIMIT ${n + 1} OFFSET ${n + 2}",
                *args,
                limit,
                offset,
            )
        return Page(int(count), [event_from_stored(r[0], r[1]) for r in rows])

    async def get_event(self, event_id: str) -> Event | None:
        """The stored event or None; raises :class:`StoreError`."""
        async with self._db.conn() as conn:
            row = await conn.fetchrow(f"{EVENT_SQL} {LIVE} AND e.id = $1", event_id)
        return event_from_stored(row[0], row[1]) if row is not None else None

    async def list_attempts(
        self, event_id: str | None, subscriber_id: str | None, offset: int, limit: int
    ) -> Page[AttemptRecord]:
        """Newest first; raises :class:`StoreError`."""
        conds: list[str] = []
        args: list[str] = []
        for column, value in (("a.event_id", event_id), ("a.subscriber_id", subscriber_id)):
            if value is not None:
                args.append(value)
                conds.append(f"{column} = ${len(args)}")
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        n = len(args)
        async with self._db.conn() as conn:
            count = await conn.fetchval(f"SELECT COUNT(*) FROM attempts a {where}", *args)
            rows = await conn.fetch(
                f"SELECT {ATTEMPT_COLUMNS} FROM attempts a JOIN deliveries d"
                f" ON d.id = a.delivery_id {where} ORDER BY a.id DESC"
                f" LIMIT ${n + 1} OFFSET ${n + 2}",
                *args,
                limit,
                offset,
            )
        return Page(int(count), [attempt_from_row(r) for r in rows])

    async def counts(self) -> dict[str, int]:
        """Row counts: inbox, ignored, events, pending, dead, held; raises :class:`StoreError`."""
        async with self._db.conn() as conn:
            row = await conn.fetchrow(_COUNTS)
        return {k: int(v) for k, v in row.items()}

    # -- the console (bridge.store.browse) -------------------------------------------------------
    async def browse_events(self, query: EventQuery, before: int | None, limit: int) -> EventSlice:
        sql, args = event_page_sql(query, before, limit, lambda n: f"${n}")
        async with self._db.conn() as conn:
            rows = await conn.fetch(sql, *args)
        return event_slice(rows, limit)

    async def get_inbox(self, provider: str, provider_event_id: str) -> InboxRecord | None:
        async with self._db.conn() as conn:
            row = await conn.fetchrow(
                "SELECT provider, provider_event_id, type, received_at, payload FROM inbox"
                " WHERE provider = $1 AND provider_event_id = $2",
                provider,
                provider_event_id,
            )
        return InboxRecord(row[0], row[1], row[2], row[3], bytes(row[4])) if row else None

    async def overview(self, since: float) -> StoreOverview:
        async with self._db.conn() as conn:
            row = await conn.fetchrow(_OVERVIEW, int(since))
        return StoreOverview(int(row[0]), int(row[1]), int(row[2]), row[3])

    async def activity(self, since: float, bucket_s: float, buckets: int) -> list[ActivityBucket]:
        # Whole seconds: events' ``created`` is an integer column.
        start, step = int(since), int(bucket_s)
        until = start + step * buckets
        async with self._db.conn() as conn:
            events = await conn.fetch(_ACTIVITY_EVENTS, start, step, until)
            failed = await conn.fetch(_ACTIVITY_FAILED, float(start), float(step), float(until))
        return activity_buckets(
            start, step, buckets, [(r[0], r[1]) for r in events], [(r[0], r[1]) for r in failed]
        )

    async def last_success_at(self, subscriber_id: str) -> float | None:
        async with self._db.conn() as conn:
            value = await conn.fetchval(
                # Newest first on attempts_by_subscriber: stops at the latest success.
                "SELECT finished_at FROM attempts WHERE subscriber_id = $1"
                " AND outcome = 'succeeded' ORDER BY id DESC LIMIT 1",
                subscriber_id,
            )
        return None if value is None else float(value)
