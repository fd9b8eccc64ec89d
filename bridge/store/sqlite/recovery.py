"""SQLite store, the operator's view of deliveries: listing them, totals per subscriber for
metrics, and recovery (decided by :func:`bridge.recovery.plan_recovery`)."""

from __future__ import annotations

import asyncio
import sqlite3

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
from bridge.store.sqlite.subscribers import SubscriberCache
from bridge.store.sqlite.worker import SqliteWorker

__all__ = ["SqliteRecovery"]

_Conn = sqlite3.Connection


def _q(sql: str) -> str:
    return render(sql, lambda _n: "?")


_CANDIDATES = _q(RECOVERY_CANDIDATES)
_STATS = _q(STATS)


class SqliteRecovery:
    """The recovery part of the SQLite store."""

    def __init__(self, worker: SqliteWorker, cache: SubscriberCache) -> None:
        self._worker = worker
        self._cache = cache

    def list_deliveries(
        self,
        status: DeliveryStatus | None,
        subscriber_id: str | None,
        before_id: int | None,
        limit: int,
    ) -> asyncio.Future[KeysetPage[DeliveryRecord]]:
        sql, args = delivery_list(status, subscriber_id, before_id, limit)

        def tx(conn: _Conn) -> KeysetPage[DeliveryRecord]:
            return keyset_page(conn.execute(_q(sql), args).fetchall(), limit)

        return self._worker.call(tx, durable=False)

    def delivery_stats(self) -> asyncio.Future[list[EndpointDeliveryStats]]:
        def tx(conn: _Conn) -> list[EndpointDeliveryStats]:
            grouped = conn.execute(_STATS).fetchall()
            ids = oldest_pending_ids(grouped)
            marks = ", ".join("?" * len(ids)) or "NULL"
            created = conn.execute(
                f"SELECT id, created_at FROM deliveries WHERE id IN ({marks})", ids
            ).fetchall()
            return stats_from_rows(self._cache.get(conn), grouped, dict(created))

        return self._worker.call(tx, durable=False)

    def recover(
        self, endpoint_id: str, since: float, now: float, dry_run: bool
    ) -> asyncio.Future[RecoveryResult]:
        def tx(conn: _Conn) -> RecoveryResult:
            sub = next((s for s in self._cache.get(conn) if s.id == endpoint_id), None)
            if sub is None or sub.kind != "endpoint":
                raise LookupError(f"no endpoint {endpoint_id}")
            rows = conn.execute(_CANDIDATES, (now, endpoint_id, since)).fetchall()
            plan = plan_recovery((failed_from_row(r) for r in rows), since=since)
            if not dry_run:
                conn.executemany(
                    "INSERT INTO deliveries (event_id, subscriber_id, status, attempts,"
                    " next_attempt_at, created_at, updated_at)"
                    " VALUES (?, ?, 'pending', 0, ?, ?, ?)",
                    [(d.event_id, endpoint_id, now, now, now) for d in plan.resend],
                )
                conn.executemany(
                    "UPDATE deliveries SET next_attempt_at = ? WHERE id = ? AND status = 'pending'",
                    [(now, d.id) for d in plan.retry_now],
                )
            return RecoveryResult(
                endpoint_id, since, len(plan.resend), len(plan.retry_now), dry_run, sub.status
            )

        return self._worker.call(tx, durable=not dry_run)
