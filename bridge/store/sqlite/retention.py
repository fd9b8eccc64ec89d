"""SQLite store, retention: runs one window of :func:`bridge.store.retention.prune_window` as
one job of the writer thread, with the SQL below for each statement it asks for (lists travel
as one JSON array parameter)."""

from __future__ import annotations

import asyncio
import sqlite3

import orjson

from bridge.store.retention import Cutoffs, PruneCounts, PruneCursor, Walk, prune_window
from bridge.store.sqlite.worker import SqliteWorker

__all__ = ["SqliteRetention"]

_LIST = "(SELECT value FROM json_each(?))"
_MARKS = ("pi_links", "pi_standalone")
_DELIVERY = "SELECT id, event_id, subscriber_id, status FROM deliveries"
_SQL = {
    "subscribers": "SELECT id FROM subscribers",
    "attempts_window": (
        "SELECT id, started_at, delivery_id FROM attempts WHERE id > ? ORDER BY id LIMIT ?"
    ),
    "deliveries_beside": (
        f"{_DELIVERY} WHERE event_id IN (SELECT event_id FROM deliveries WHERE id IN {_LIST})"
    ),
    "delete_attempts": f"DELETE FROM attempts WHERE id IN {_LIST}",
    "events_window": (
        "SELECT seq, id, stored_at, length(body) = 0 FROM events WHERE seq > ? ORDER BY seq LIMIT ?"
    ),
    "deliveries_of_events": f"{_DELIVERY} WHERE event_id IN {_LIST}",
    "count_attempts_of_events": f"SELECT COUNT(*) FROM attempts WHERE event_id IN {_LIST}",
    "delete_attempts_of_events": f"DELETE FROM attempts WHERE event_id IN {_LIST}",
    "delete_deliveries_of_events": f"DELETE FROM deliveries WHERE event_id IN {_LIST}",
    "delete_events": f"DELETE FROM events WHERE seq IN {_LIST}",
    "stub_events": f"UPDATE events SET body = x'', object_of = NULL WHERE seq IN {_LIST}",
    "inbox_window": (
        "SELECT rowid, received_at, status, EXISTS (SELECT 1 FROM events e"
        " WHERE e.object_of = inbox.provider_event_id AND e.source = inbox.provider)"
        " FROM inbox WHERE rowid > ? ORDER BY rowid LIMIT ?"
    ),
    "delete_inbox": f"DELETE FROM inbox WHERE rowid IN {_LIST}",
    **{
        f"{t}_window": (
            f"SELECT rowid, created_at, EXISTS (SELECT 1 FROM deferred d"
            f" WHERE d.payment_intent = {t}.payment_intent)"
            f" FROM {t} WHERE rowid > ? ORDER BY rowid LIMIT ?"
        )
        for t in _MARKS
    },
    **{
        f"delete_{t}": (
            f"DELETE FROM {t} WHERE rowid IN {_LIST} AND NOT EXISTS (SELECT 1 FROM deferred d"
            f" WHERE d.payment_intent = {t}.payment_intent)"
        )
        for t in _MARKS
    },
}


def _param(value: object) -> object:
    return orjson.dumps(value).decode() if isinstance(value, list) else value


def _run(conn: sqlite3.Connection, walk: Walk) -> tuple[PruneCounts, PruneCursor | None]:
    try:
        step = next(walk)
        while True:
            cur = conn.execute(_SQL[step.op], [_param(p) for p in step.params])
            step = walk.send(cur.fetchall() if step.read else cur.rowcount)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


class SqliteRetention:
    """The retention part of the SQLite store."""

    def __init__(self, worker: SqliteWorker) -> None:
        self._worker = worker

    def prune(
        self, c: Cutoffs, cursor: PruneCursor, limit: int, dry_run: bool
    ) -> asyncio.Future[tuple[PruneCounts, PruneCursor | None]]:
        def tx(conn: sqlite3.Connection) -> tuple[PruneCounts, PruneCursor | None]:
            return _run(conn, prune_window(c, cursor, limit, dry_run))

        # Bookkeeping (no fsync): a prune lost in a power cut is made again by the next run.
        return self._worker.call(tx, durable=False)
