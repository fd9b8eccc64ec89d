"""SQLite store, correlation: held PaymentIntent decisions whose window passed, and thin
events whose related object is still to be fetched."""

from __future__ import annotations

import asyncio
import sqlite3

from adapters.base import Normalized
from bridge.store.base import ClaimedDeferred, InboxRecord, IngestResult
from bridge.store.parts import Lease, Writing
from bridge.store.sqlite.ingest import SqliteIngest
from bridge.store.sqlite.links import events_from_blob
from bridge.store.sqlite.worker import SqliteWorker

__all__ = ["SqliteCorrelation"]

_Conn = sqlite3.Connection


class SqliteCorrelation:
    """The correlation part of the SQLite store."""

    def __init__(self, worker: SqliteWorker, ingest: SqliteIngest) -> None:
        self._worker = worker
        self._ingest = ingest

    def claim_pending_fetches(self, lease: Lease, limit: int) -> asyncio.Future[list[InboxRecord]]:
        def tx(conn: _Conn) -> list[InboxRecord]:
            rows = conn.execute(
                "UPDATE inbox SET lease_owner = ?, lease_until = ? WHERE rowid IN ("
                " SELECT rowid FROM inbox WHERE status = 'pending_fetch'"
                " AND (lease_until IS NULL OR lease_until < ?) ORDER BY received_at LIMIT ?)"
                " RETURNING provider, provider_event_id, type, received_at, payload",
                (lease.owner, lease.until, lease.now, limit),
            ).fetchall()
            return [InboxRecord(r[0], r[1], r[2], r[3], bytes(r[4])) for r in rows]

        return self._worker.call(tx, durable=False)

    def complete_fetch(
        self,
        pending: InboxRecord,
        fetched: InboxRecord,
        normalized: Normalized,
        w: Writing,
    ) -> asyncio.Future[IngestResult]:
        def tx(conn: _Conn) -> IngestResult:
            done = conn.execute(
                "UPDATE inbox SET status = 'processed', lease_owner = NULL, lease_until = NULL"
                " WHERE provider = ? AND provider_event_id = ? AND status = 'pending_fetch'",
                (pending.provider, pending.provider_event_id),
            ).rowcount
            if not done:
                return IngestResult(duplicate=True)
            return self._ingest.tx(conn, fetched, normalized, w)

        return self._worker.call(tx)

    def claim_due_deferred(self, lease: Lease, limit: int) -> asyncio.Future[list[ClaimedDeferred]]:
        def tx(conn: _Conn) -> list[ClaimedDeferred]:
            rows = conn.execute(
                "UPDATE deferred SET lease_owner = ?, lease_until = ? WHERE id IN ("
                " SELECT id FROM deferred WHERE decide_at <= ?"
                " AND (lease_until IS NULL OR lease_until < ?) ORDER BY decide_at LIMIT ?)"
                " RETURNING id, payment_intent, livemode, events",
                (lease.owner, lease.until, lease.now, lease.now, limit),
            ).fetchall()
            return [
                ClaimedDeferred(
                    int(r[0]),
                    r[1],
                    bool(r[2]),
                    events_from_blob(r[3]),
                )
                for r in rows
            ]

        return self._worker.call(tx, durable=False)

    def resolve_deferred(
        self, deferred_id: int, emit: bool, invoice: str | None, w: Writing
    ) -> asyncio.Future[IngestResult]:
        def tx(conn: _Conn) -> IngestResult:
            row = conn.execute(
                "DELETE FROM deferred WHERE id = ? RETURNING payment_intent, events",
                (deferred_id,),
            ).fetchone()
            if row is None:  # already decided (a link arrived, or another claim won)
                return IngestResult(duplicate=True)
            pi = row[0]
            if invoice is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO pi_links (payment_intent, invoice) VALUES (?, ?)",
                    (pi, invoice),
                )
            linked = conn.execute(
                "SELECT 1 FROM pi_links WHERE payment_intent = ?", (pi,)
            ).fetchone()
            if not emit or linked:
                return IngestResult(False, dropped=1)
            events = events_from_blob(row[1])
            new, deliveries = self._ingest.insert_events(conn, events, w, None)
            return IngestResult(False, new, deliveries)

        return self._worker.call(tx)
