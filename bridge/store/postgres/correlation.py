"""PostgreSQL store, correlation: held PaymentIntent outcomes (claimed when a look-up or the
window's end is due, decided by :func:`bridge.holds.decide_hold` inside the transaction that
persists the verdict, under the PI's advisory lock; invoice payments are claimed with a
conditional update, so two instances matching at once never use one twice), and thin events
whose related object is still to be fetched."""

from __future__ import annotations

from typing import Any

from bridge.events import Event
from bridge.holds import Answer, Hold, Seen, Verdict, decide_hold
from bridge.normalized import Normalized
from bridge.store.base import InboxRecord, IngestResult
from bridge.store.hold_rows import HOLD_COLUMNS, hold_from_row
from bridge.store.parts import Lease, Writing
from bridge.store.postgres.ingest import PgIngest
from bridge.store.postgres.links import lock
from bridge.store.postgres.pool import PgPool

__all__ = ["PgCorrelation"]


async def _claim_holds(conn: Any, lease: Lease, limit: int) -> list[Hold]:
    rows = await conn.fetch(
        "UPDATE deferred SET lease_owner = $1, lease_until = $2 WHERE id IN ("
        " SELECT id FROM deferred WHERE next_check_at <= $3"
        " AND (lease_until IS NULL OR lease_until < $3)"
        " ORDER BY next_check_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)"
        f" RETURNING {HOLD_COLUMNS}",
        lease.owner,
        lease.until,
        lease.now,
        limit,
    )
    return sorted((hold_from_row(r) for r in rows), key=lambda h: h.id)


async def _retry_hold(conn: Any, hold_id: int, next_check_at: float, owner: str) -> None:
    await conn.execute(
        "UPDATE deferred SET next_check_at = $1, checks = checks + 1, lease_owner = NULL,"
        " lease_until = NULL WHERE id = $2 AND lease_owner = $3",
        next_check_at,
        hold_id,
        owner,
    )


async def _seen(conn: Any, hold: Hold) -> list[Seen]:
    """Unclaimed invoice payments with ``hold``'s key whose invoice no PI is linked to."""
    k = hold.key
    if k is None:
        return []
    rows = await conn.fetch(
        "SELECT ref, invoice, seen_at FROM invoice_payments WHERE customer = $1"
        " AND outcome = $2 AND amount = $3 AND currency = $4 AND claimed_by IS NULL"
        " AND NOT EXISTS (SELECT 1 FROM pi_links l WHERE l.invoice = invoice_payments.invoice)",
        k.customer,
        k.outcome,
        k.amount,
        k.currency,
    )
    return [Seen(r["ref"], r["invoice"], float(r["seen_at"])) for r in rows]


async def _decide(conn: Any, hold: Hold, answer: Answer | None, now: float) -> Verdict:
    """:func:`decide_hold`, claiming the invoice payment a match uses; one claimed by another
    transaction meanwhile is passed over."""
    linked = await conn.fetchval(
        "SELECT 1 FROM pi_links WHERE payment_intent = $1", hold.payment_intent
    )
    seen = [] if linked or answer is not None else await _seen(conn, hold)
    while True:
        verdict = decide_hold(hold, linked=bool(linked), answer=answer, seen=seen, now=now)
        if verdict.claim is None:
            return verdict
        claimed = await conn.fetchval(
            "UPDATE invoice_payments SET claimed_by = $1 WHERE ref = $2 AND claimed_by IS NULL"
            " RETURNING 1",
            hold.payment_intent,
            verdict.claim,
        )
        if claimed:
            return verdict
        seen = [s for s in seen if s.ref != verdict.claim]


async def _resolve_hold(
    conn: Any, hold_id: int, answer: Answer | None, now: float
) -> tuple[Verdict, list[Event], int] | None:
    """Decide and persist one hold: (verdict, events to emit, holds dropped), or None when it
    was decided already. Takes the PI's advisory lock."""
    pi = await conn.fetchval("SELECT payment_intent FROM deferred WHERE id = $1", hold_id)
    if pi is None:
        return None
    await lock(conn, ["pi:" + pi])
    row = await conn.fetchrow(
        f"DELETE FROM deferred WHERE id = $1 RETURNING {HOLD_COLUMNS}", hold_id
    )
    if row is None:  # decided while we waited for the lock
        return None
    hold = hold_from_row(row)
    verdict = await _decide(conn, hold, answer, now)
    dropped = 0 if verdict.emit else 1
    if verdict.link is not None:
        await conn.execute(
            "INSERT INTO pi_links (payment_intent, invoice, created_at) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING",
            pi,
            verdict.link.invoice,
            now,
        )
        # The PI's other held outcomes (a failure before its success, say) are the invoice's.
        gone = await conn.fetch("DELETE FROM deferred WHERE payment_intent = $1 RETURNING id", pi)
        dropped += len(gone)
    return verdict, hold.events if verdict.emit else [], dropped


class PgCorrelation:
    """The correlation part of the PostgreSQL store."""

    def __init__(self, db: PgPool, ingest: PgIngest) -> None:
        self._db = db
        self._ingest = ingest

    async def claim_holds(self, lease: Lease, limit: int) -> list[Hold]:
        """See :meth:`Store.claim_holds`; raises :class:`StoreError`."""
        async with self._db.tx(durable=False) as conn:
            return await _claim_holds(conn, lease, limit)

    async def retry_hold(self, hold_id: int, next_check_at: float, owner: str) -> None:
        """See :meth:`Store.retry_hold`; raises :class:`StoreError`."""
        async with self._db.tx(durable=False) as conn:
            await _retry_hold(conn, hold_id, next_check_at, owner)

    async def resolve_hold(self, hold_id: int, answer: Answer | None, w: Writing) -> IngestResult:
        """See :meth:`Store.resolve_hold`; raises :class:`StoreError`."""
        async with self._db.tx() as conn:
            decided = await _resolve_hold(conn, hold_id, answer, w.now)
            if decided is None:  # already decided (a link arrived, or another claim won)
                return IngestResult(duplicate=True)
            verdict, events, dropped = decided
            new, deliveries = await self._ingest.insert_events(conn, events, w, None)
        return IngestResult(False, new, deliveries, dropped=dropped, verdict=verdict)

    async def forget_invoice_payments(self, seen_before: float) -> int:
        """See :meth:`Store.forget_invoice_payments`; raises :class:`StoreError`."""
        async with self._db.tx(durable=False) as conn:
            gone = await conn.fetch(
                "DELETE FROM invoice_payments WHERE seen_at < $1 RETURNING 1", seen_before
            )
        return len(gone)

    async def held_summary(self) -> tuple[int, float | None]:
        """See :meth:`Store.held_summary`; raises :class:`StoreError`."""
        async with self._db.conn() as conn:
            row = await conn.fetchrow("SELECT count(*) AS n, min(created_at) AS o FROM deferred")
        return int(row["n"]), row["o"]

    async def claim_pending_fetches(self, lease: Lease, limit: int) -> list[InboxRecord]:
        """See :meth:`Store.claim_pending_fetches`; raises :class:`StoreError`."""
        async with self._db.tx(durable=False) as conn:
            rows = await conn.fetch(
                "UPDATE inbox SET lease_owner = $1, lease_until = $2"
                " WHERE (provider, provider_event_id) IN ("
                " SELECT provider, provider_event_id FROM inbox WHERE status = 'pending_fetch'"
                " AND (lease_until IS NULL OR lease_until < $3)"
                " ORDER BY received_at LIMIT $4 FOR UPDATE SKIP LOCKED)"
                " RETURNING provider, provider_event_id, type, received_at, payload",
                lease.owner,
                lease.until,
                lease.now,
                limit,
            )
        return [
            InboxRecord(
                r["provider"],
                r["provider_event_id"],
                r["type"],
                r["received_at"],
                bytes(r["payload"]),
            )
            for r in rows
        ]

    async def complete_fetch(
        self,
        pending: InboxRecord,
        fetched: InboxRecord,
        normalized: Normalized,
        w: Writing,
    ) -> IngestResult:
        """See :meth:`Store.complete_fetch`; raises :class:`StoreError`."""
        async with self._db.tx() as conn:
            done = await conn.fetchval(
                "UPDATE inbox SET status = 'processed', lease_owner = NULL, lease_until = NULL"
                " WHERE provider = $1 AND provider_event_id = $2 AND status = 'pending_fetch'"
                " RETURNING 1",
                pending.provider,
                pending.provider_event_id,
            )
            if done is None:
                return IngestResult(duplicate=True)
            return await self._ingest.tx(conn, fetched, normalized, w)
