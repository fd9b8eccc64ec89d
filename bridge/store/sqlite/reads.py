"""SQLite store, the read side: events (bodies rebuilt around their inbox row's object),
attempts and counts."""

from __future__ import annotations

import asyncio
import sqlite3

from bridge.events import Event
from bridge.store.base import AttemptRecord, Page
from bridge.store.bodies import event_from_stored
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
