"""SQLite store, correlation: held PaymentIntent outcomes (claimed when a look-up or the
window's end is due, decided by :func:`bridge.holds.decide_hold` inside the transaction that
persists the verdict), and thin events whose related object is still to be fetched."""

from __future__ import annotations

import asyncio
import sqlite3

from bridge.events import Event
from bridge.holds import Answer, Hold, Seen, Verdict, decide_hold
from bridge.normalized import Normalized
from bridge.store.base import InboxRecord, IngestResult
from bridge.store.compression import unpacked
from bridge.store.hold_rows import HOLD_COLUMNS, hold_from_row
from bridge.store.parts import Lease, Writing
from bridge.store.sqlite.ingest import SqliteIngest
from bridge.store.sqlite.worker import SqliteWorker

__all__ = ["SqliteCorrelation"]

_Conn = sqlite3.Connection


def _claim_holds(conn: _Conn, lease: Lease, limit: int) -> list[Hold]:
    rows = conn.execute(
        "UPDATE deferred SET lease_owner = ?, lease_until = ? WHERE id IN ("
        " SELECT id FROM deferred WHERE next_check_at <= ?"
        " AND (lease_until IS NULL OR lease_until < ?) ORDER BY next_check_at, id LIMIT ?)"
        f" RETURNING {HOLD_COLUMNS}",
        (lease.owner, lease.until, lease.now, lease.now, limit),
    ).fetchall()
    return sorted((hold_from_row(r) for r in rows), key=lambda h: h.id)


def _retry_hold(conn: _Conn, hold_id: int, next_check_at: float, owner: str) -> None:
    conn.execute(
        "UPDATE deferred SET next_check_at = ?, checks = checks + 1, lease_owner = NULL,"
        " lease_until = NULL WHERE id = ? AND lease_owner = ?",
        (next_check_at, hold_id, owner),
    )


def _seen(conn: _Conn, hold: Hold) -> list[Seen]:
    """Unclaimed invoice payments with ``hold``'s key whose invoice no PI is linked to."""
    k = hold.key
    if k is None:
        return []
    rows = conn.execute(
        "SELECT ref, invoice, seen_at FROM invoice_payments WHERE customer = ? AND outcome = ?"
        " AND amount = ? AND currency = ? AND claimed_by IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM pi_links l WHERE l.invoice = invoice_payments.invoice)",
        (k.customer, k.outcome, k.amount, k.currency),
    ).fetchall()
    return [Seen(r[0], r[1], float(r[2])) for r in rows]


def _resolve_hold(
    conn: _Conn, hold_id: int, answer: Answer | None, now: float
) -> tuple[Verdict, list[Event], int] | None:
    """Decide and persist one hold: (verdict, events to emit, holds dropped), or None when it
    was decided already."""
    row = conn.execute(f"SELECT {HOLD_COLUMNS} FROM deferred WHERE id = ?", (hold_id,)).fetchone()
    if row is None:
        return None
    hold = hold_from_row(row)
    pi = hold.payment_intent
    linked = conn.execute("SELECT 1 FROM pi_links WHERE payment_intent = ?", (pi,)).fetchone()
    seen = [] if linked or answer is not None else _seen(conn, hold)
    verdict = decide_hold(hold, linked=bool(linked), answer=answer, seen=seen, now=now)
    conn.execute("DELETE FROM deferred WHERE id = ?", (hold_id,))
    dropped = 0 if verdict.emit else 1
    if verdict.link is not None:
        conn.execute(
            "INSERT OR IGNORE INTO pi_links (payment_intent, invoice, created_at) VALUES (?, ?, ?)",
            (pi, verdict.link.invoice, now),
        )
        # The PI's other held outcomes (a failure before its success, say) are the invoice's.
        dropped += conn.execute("DELETE FROM deferred WHERE payment_intent = ?", (pi,)).rowcount
    if verdict.claim is not None:
        conn.execute(
            "UPDATE invoice_payments SET claimed_by = ? WHERE ref = ?", (pi, verdict.claim)
        )
    return verdict, hold.events if verdict.emit else [], dropped


class SqliteCorrelation:
    """The correlation part of the SQLite store."""

    def __init__(self, worker: SqliteWorker, ingest: SqliteIngest) -> None:
        self._worker = worker
        self._ingest = ingest

    def claim_holds(self, lease: Lease, limit: int) -> asyncio.Future[list[Hold]]:
        return self._worker.call(_claim_holds, lease, limit, durable=False)

    def retry_hold(self, hold_id: int, next_check_at: float, owner: str) -> asyncio.Future[None]:
        return self._worker.call(_retry_hold, hold_id, next_check_at, owner, durable=False)

    def resolve_hold(
        self, hold_id: int, answer: Answer | None, w: Writing
    ) -> asyncio.Future[IngestResult]:
        def tx(conn: _Conn) -> IngestResult:
            decided = _resolve_hold(conn, hold_id, answer, w.now)
            if decided is None:  # already decided (a link arrived, or another claim won)
                return IngestResult(duplicate=True)
            verdict, events, dropped = decided
            new, deliveries = self._ingest.insert_events(conn, events, w, None)
            return IngestResult(False, new, deliveries, dropped=dropped, verdict=verdict)

        return self._worker.call(tx)

    def forget_invoice_payments(self, seen_before: float) -> asyncio.Future[int]:
        def tx(conn: _Conn) -> int:
            return conn.execute(
                "DELETE FROM invoice_payments WHERE seen_at < ?", (seen_before,)
            ).rowcount

        return self._worker.call(tx, durable=False)

    def held_summary(self) -> asyncio.Future[tuple[int, float | None]]:
        def read(conn: _Conn) -> tuple[int, float | None]:
            n, oldest = conn.execute("SELECT count(*), min(created_at) FROM deferred").fetchone()
            return int(n), oldest

        return self._worker.call(read, durable=False)

    def claim_pending_fetches(self, lease: Lease, limit: int) -> asyncio.Future[list[InboxRecord]]:
        def tx(conn: _Conn) -> list[InboxRecord]:
            rows = conn.execute(
                "UPDATE inbox SET lease_owner = ?, lease_until = ? WHERE rowid IN ("
                " SELECT rowid FROM inbox WHERE status = 'pending_fetch'"
                " AND (lease_until IS NULL OR lease_until < ?) ORDER BY received_at LIMIT ?)"
                " RETURNING provider, provider_event_id, type, received_at, payload",
                (lease.owner, lease.until, lease.now, limit),
            ).fetchall()
            return [InboxRecord(r[0], r[1], r[2], r[3], unpacked(bytes(r[4]))) for r in rows]

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
