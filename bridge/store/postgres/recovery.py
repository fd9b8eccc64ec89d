"""PostgreSQL store, the operator's view of deliveries: listing them, totals per subscriber
for metrics, and recovery (decided by :func:`bridge.recovery.plan_recovery`)."""

from __future__ import annotations

from bridge.recovery import RecoveryResult, plan_recovery
from bridge.store.base import DeliveryRecord, DeliveryStatus, EndpointDeliveryStats, KeysetPage
from bridge.store.operator_rows import (
    RECOVERY_CANDIDATES,
    STATS,
    delivery_list,
    failed_from_row,
    keyset_page,
    oldest_pending_ids,
    render,
    stats_from_rows,
)
from bridge.store.postgres.pool import PgPool
from bridge.store.rows import SUBSCRIBER_COLUMNS, subscriber_from_row

__all__ = ["PgRecovery"]


def _q(sql: str) -> str:
    return render(sql, lambda n: f"${n}")


_CANDIDATES = _q(RECOVERY_CANDIDATES)
_STATS = _q(STATS)
# Two recoveries of one endpoint at once would both resend its dead deliveries.
_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('recover:' || $1, 0))"


class PgRecovery:
    """The recovery part of the PostgreSQL store."""

    def __init__(self, db: PgPool) -> None:
        self._db = db

    async def list_deliveries(
        self,
        status: DeliveryStatus | None,
        subscriber_id: str | None,
        before_id: int | None,
        limit: int,
    ) -> KeysetPage[DeliveryRecord]:
        """Newest first; raises :class:`StoreError`."""
        sql, args = delivery_list(status, subscriber_id, before_id, limit)
        async with self._db.conn() as conn:
            rows = await conn.fetch(_q(sql), *args)
        return keyset_page(rows, limit)

    async def delivery_stats(self) -> list[EndpointDeliveryStats]:
        """Per subscriber, read fresh; raises :class:`StoreError`."""
        async with self._db.conn() as conn:
            subs = await conn.fetch(f"SELECT {SUBSCRIBER_COLUMNS} FROM subscribers")
            grouped = await conn.fetch(_STATS)
            created = await conn.fetch(
                "SELECT id, created_at FROM deliveries WHERE id = ANY($1::bigint[])",
                oldest_pending_ids(grouped),
            )
        return stats_from_rows(
            [subscriber_from_row(r) for r in subs], grouped, {r[0]: r[1] for r in created}
        )

    async def recover(
        self, endpoint_id: str, since: float, now: float, dry_run: bool
    ) -> RecoveryResult:
        """One transaction, one recovery of an endpoint at a time; raises LookupError for an
        unknown endpoint and :class:`StoreError`."""
        async with self._db.tx() as conn:
            await conn.execute(_LOCK, endpoint_id)
            row = await conn.fetchrow(
                "SELECT kind, status FROM subscribers WHERE id = $1", endpoint_id
            )
            if row is None or row[0] != "endpoint":
                raise LookupError(f"no endpoint {endpoint_id}")
            rows = await conn.fetch(_CANDIDATES, now, endpoint_id, since)
            plan = plan_recovery((failed_from_row(r) for r in rows), since=since)
            if not dry_run and plan.count:
                await conn.execute(
                    "INSERT INTO deliveries (event_id, subscriber_id, status, attempts,"
                    " next_attempt_at, created_at, updated_at)"
                    " SELECT e, $2, 'pending', 0, $3, $3, $3 FROM unnest($1::text[]) AS e",
                    [d.event_id for d in plan.resend],
                    endpoint_id,
                    now,
                )
                await conn.execute(
                    "UPDATE deliveries SET next_attempt_at = $2"
                    " WHERE id = ANY($1::bigint[]) AND status = 'pending'",
                    [d.id for d in plan.retry_now],
                    now,
                )
        return RecoveryResult(
            endpoint_id, since, len(plan.resend), len(plan.retry_now), dry_run, row[1]
        )
