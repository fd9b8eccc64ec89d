"""SQLite store, the read side: events (bodies rebuilt around their inbox row's object),
attempts, counts, and the console's keyset pages and overview (:mod:`bridge.store.browse`)."""

from __future__ import annotations

import asyncio
import sqlite3

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
from bridge.store.rows import ATTEMPT_COLUMNS, attempt_from_row
from bridge.store.sqlite.worker import SqliteWorker

__all__ = ["EVENT_SQL", "LIVE", "SqliteReads"]

_Conn = sqlite3.Connection
# Events that are not stubs (ids kept by retention, see bridge.store.retention).
LIVE = "WHERE length(e.body) > 0"
# An event's stored body and the raw request whose object it refers to (if any).
EVENT_SQL = (
    "SELECT e.body, i.payload FROM events e LEFT JOIN inbox i"
    " ON i.provider = e.source AND i.provider_event_id = e.object_of"
)


class SqliteReads:
    """The read part of the SQLite store."""

    def __init__(self, worker: SqliteWorker) -> None:
        self._worker = worker

    def list_events(
        self, type: str | None, offset: int, limit: int | None
    ) -> asyncio.Future[Page[Event]]:
        def tx(conn: _Conn) -> Page[Event]:
            where, args = (f"{LIVE} AND e.type = ?", [type]) if type else (LIVE, [])
            (count,) = conn.execute(f"SELECT COUNT(*) FROM events e {where}", args).fetchone()
            rows = conn.execute(
                f"{EVENT_SQL} {where} ORDER BY e.seq DESC LIMIT ? OFFSET ?",
                [*args, -1 if limit is None else limit, offset],
            ).fetchall()
            return Page(int(count), [event_from_stored(r[0], r[1]) for r in rows])

        return self._worker.call(tx, durable=False)

    def get_event(self, event_id: str) -> asyncio.Future[Event | None]:
        def tx(conn: _Conn) -> Event | None:
            row = conn.execute(f"{EVENT_SQL} {LIVE} AND e.id = ?", (event_id,)).fetchone()
            return event_from_stored(row[0], row[1]) if row else None

        return self._worker.call(tx, durable=False)

    def list_attempts(
        self, event_id: str | None, subscriber_id: str | None, offset: int, limit: int
    ) -> asyncio.Future[Page[AttemptRecord]]:
        def tx(conn: _Conn) -> Page[AttemptRecord]:
            conds, args = [], []
            if event_id is not None:
                conds.append("a.event_id = ?")
                args.append(event_id)
            if subscriber_id is not None:
                conds.append("a.subscriber_id = ?")
                args.append(subscriber_id)
            where = ("WHERE " + " AND ".join(conds)) if conds else ""
            (count,) = conn.execute(f"SELECT COUNT(*) FROM attempts a {where}", args).fetchone()
            rows = conn.execute(
                f"SELECT {ATTEMPT_COLUMNS} FROM attempts a JOIN deliveries d"
                f" ON d.id = a.delivery_id {where} ORDER BY a.id DESC LIMIT ? OFFSET ?",
                [*args, limit, offset],
            ).fetchall()
            return Page(int(count), [attempt_from_row(r) for r in rows])

        return self._worker.call(tx, durable=False)

    def counts(self) -> asyncio.Future[dict[str, int]]:
        def tx(conn: _Conn) -> dict[str, int]:
            q = {
                "inbox": "SELECT COUNT(*) FROM inbox",
                "ignored": "SELECT COUNT(*) FROM inbox WHERE status = 'ignored'",
                "events": f"SELECT COUNT(*) FROM events e {LIVE}",
                "pending": "SELECT COUNT(*) FROM deliveries WHERE status = 'pending'",
                "dead": "SELECT COUNT(*) FROM deliveries WHERE status = 'dead'",
                "held": "SELECT COUNT(*) FROM deferred",
                "pending_fetch": "SELECT COUNT(*) FROM inbox WHERE status = 'pending_fetch'",
            }
            return {k: int(conn.execute(sql).fetchone()[0]) for k, sql in q.items()}

        return self._worker.call(tx, durable=False)

    # -- the console (bridge.store.browse) -------------------------------------------------------
    def browse_events(
        self, query: EventQuery, before: int | None, limit: int
    ) -> asyncio.Future[EventSlice]:
        sql, args = event_page_sql(query, before, limit, lambda _n: "?")

        def tx(conn: _Conn) -> EventSlice:
            return event_slice(conn.execute(sql, args).fetchall(), limit)

        return self._worker.call(tx, durable=False)

    def get_inbox(
        self, provider: str, provider_event_id: str
    ) -> asyncio.Future[InboxRecord | None]:
        def tx(conn: _Conn) -> InboxRecord | None:
            row = conn.execute(
                "SELECT provider, provider_event_id, type, received_at, payload FROM inbox"
                " WHERE provider = ? AND provider_event_id = ?",
                (provider, provider_event_id),
            ).fetchone()
            return InboxRecord(row[0], row[1], row[2], row[3], bytes(row[4])) if row else None

        return self._worker.call(tx, durable=False)

    def overview(self, since: float) -> asyncio.Future[StoreOverview]:
        def tx(conn: _Conn) -> StoreOverview:
            (events,) = conn.execute(
                "SELECT COUNT(*) FROM events WHERE created >= ?", (since,)
            ).fetchone()
            pending, dead, oldest = conn.execute(
                "SELECT SUM(status = 'pending'), SUM(status = 'dead'),"
                " MIN(CASE WHEN status = 'pending' THEN created_at END) FROM deliveries"
                " WHERE status IN ('pending', 'dead')"
            ).fetchone()
            return StoreOverview(int(events), int(pending or 0), int(dead or 0), oldest)

        return self._worker.call(tx, durable=False)

    def activity(
        self, since: float, bucket_s: float, buckets: int
    ) -> asyncio.Future[list[ActivityBucket]]:
        until = since + bucket_s * buckets

        def tx(conn: _Conn) -> list[ActivityBucket]:
            events = conn.execute(
                "SELECT CAST((created - ?) / ? AS INTEGER) AS b, COUNT(*) FROM events"
                " WHERE created >= ? AND created < ? GROUP BY b",
                (since, bucket_s, since, until),
            ).fetchall()
            failed = conn.execute(
                "SELECT CAST((started_at - ?) / ? AS INTEGER) AS b, COUNT(*) FROM attempts"
                " WHERE outcome = 'failed' AND started_at >= ? AND started_at < ? GROUP BY b",
                (since, bucket_s, since, until),
            ).fetchall()
            return activity_buckets(since, bucket_s, buckets, events, failed)

        return self._worker.call(tx, durable=False)

    def last_success_at(self, subscriber_id: str) -> asyncio.Future[float | None]:
        def tx(conn: _Conn) -> float | None:
            row = conn.execute(
                # Newest first on (subscriber_id, id): stops at the latest success.
                "SELECT finished_at FROM attempts WHERE subscriber_id = ?"
                " AND outcome = 'succeeded' ORDER BY id DESC LIMIT 1",
                (subscriber_id,),
            ).fetchone()
            return row[0] if row else None

        return self._worker.call(tx, durable=False)
