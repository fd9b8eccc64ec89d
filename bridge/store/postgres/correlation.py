"""PostgreSQL store, correlation: held PaymentIntent decisions whose window passed, and thin
events whose related object is still to be fetched."""

from __future__ import annotations

from typing import Any

from adapters.base import Normalized
from bridge.store.base import ClaimedDeferred, InboxRecord, IngestResult
from bridge.store.parts import Lease, Writing
from bridge.store.postgres.ingest import PgIngest
from bridge.store.postgres.links import events_from_blob, lock
from bridge.store.postgres.pool import PgPool

__all__ = ["PgCorrelation"]


class PgCorrelation:
    """The correlation part of the PostgreSQL store."""

    def __init__(self, db: PgPool, ingest: PgIngest) -> None:
        self._db = db
        self._ingest = ingest

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

    async def claim_due_deferred(self, lease: Lease, limit: int) -> list[ClaimedDeferred]:
        """See :meth:`Store.claim_due_deferred`; raises :class:`StoreError`."""
        async with self._db.tx(durable=False) as conn:
            rows = await conn.fetch(
                "UPDATE deferred SET lease_owner = $1, lease_until = $2 WHERE id IN ("
                " SELECT id FROM deferred WHERE decide_at <= $3"
                " AND (lease_until IS NULL OR lease_until < $3)"
                " ORDER BY decide_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)"
                " RETURNING id, payment_intent, livemode, events, decide_at",
                lease.owner,
                lease.until,
                lease.now,
                limit,
            )
        rows = sorted(rows, key=lambda r: (r["decide_at"], r["id"]))
        return [
            ClaimedDeferred(
                int(r["id"]),
                r["payment_intent"],
                bool(r["livemode"]),
                events_from_blob(r["events"]),
            )
            for r in rows
        ]

    async def _resolve_tx(
        self, conn: Any, deferred_id: int, emit: bool, invoice: str | None, w: Writing
    ) -> IngestResult:
        pi = await conn.fetchval("SELECT payment_intent FROM deferred WHERE id = $1", deferred_id)
        if pi is None:  # already decided (a link arrived, or another claim won)
            return IngestResult(duplicate=True)
        await lock(conn, ["pi:" + pi])
        blob = await conn.fetchval(
            "DELETE FROM deferred WHERE id = $1 RETURNING events", deferred_id
        )
        if blob is None:  # decided while we waited for the lock
            return IngestResult(duplicate=True)
        if invoice is not None:
            await conn.execute(
                "INSERT INTO pi_links (payment_intent, invoice) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING",
                pi,
                invoice,
            )
        linked = await conn.fetchval("SELECT 1 FROM pi_links WHERE payment_intent = $1", pi)
        if not emit or linked:
            return IngestResult(False, dropped=1)
        new, deliveries = await self._ingest.insert_events(conn, events_from_blob(blob), w, None)
        return IngestResult(False, new, deliveries)

    async def resolve_deferred(
        self, deferred_id: int, emit: bool, invoice: str | None, w: Writing
    ) -> IngestResult:
        """See :meth:`Store.resolve_deferred`; raises :class:`StoreError`."""
        async with self._db.tx() as conn:
            return await self._resolve_tx(conn, deferred_id, emit, invoice, w)
