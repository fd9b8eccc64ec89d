"""SQLite store, deliveries: claims, attempts and their outcomes (with the subscriber's
failure streak), leases and resends."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence

from bridge.store.base import Delivery, DeliveryOutcome
from bridge.store.bodies import event_from_stored
from bridge.store.parts import Lease
from bridge.store.planning import (
    attempt_row,
    claimable,
    outcome_row,
    resend_targets,
    streak_update,
)
from bridge.store.sqlite.reads import EVENT_SQL, LIVE
from bridge.store.sqlite.subscribers import SubscriberCache
from bridge.store.sqlite.worker import SqliteWorker

__all__ = ["SqliteDeliveries"]

_Conn = sqlite3.Connection


class SqliteDeliveries:
    """The delivery part of the SQLite store."""

    def __init__(self, worker: SqliteWorker, cache: SubscriberCache) -> None:
        self._worker = worker
        self._cache = cache

    def claim_due(
        self, lease: Lease, limit: int, handlers: Sequence[str], exclude: Sequence[str]
    ) -> asyncio.Future[list[Delivery]]:
        def tx(conn: _Conn) -> list[Delivery]:
            allowed = claimable(self._cache.get(conn), handlers, exclude)
            if not allowed:
                return []
            marks = ",".join("?" * len(allowed))
            rows = conn.execute(
                "UPDATE deliveries SET lease_owner = ?, lease_until = ? WHERE id IN ("
                " SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?"
                " AND (lease_until IS NULL OR lease_until < ?)"
                f" AND subscriber_id IN ({marks}) ORDER BY next_attempt_at, id LIMIT ?)"
                " RETURNING id, event_id, subscriber_id, attempts, next_attempt_at, created_at",
                (lease.owner, lease.until, lease.now, lease.now, *allowed, limit),
            ).fetchall()
            out: list[Delivery] = []
            for r in rows:
                row = conn.execute(f"{EVENT_SQL} WHERE e.id = ?", (r[1],)).fetchone()
                if row is None:
                    continue
                ev = event_from_stored(row[0], row[1])
                out.append(Delivery(int(r[0]), ev, r[2], int(r[3]), r[4], "pending", r[5]))
            out.sort(key=lambda d: (d.next_attempt_at, d.id))
            return out

        return self._worker.call(tx, durable=False)

    @staticmethod
    def _start_tx(conn: _Conn, delivery_id: int, lease: Lease) -> int | None:
        row = conn.execute(
            "UPDATE deliveries SET attempts = attempts + 1, updated_at = ?, lease_until = ?"
            " WHERE id = ? AND lease_owner = ? AND status = 'pending'"
            " RETURNING attempts, event_id, subscriber_id",
            (lease.now, lease.until, delivery_id, lease.owner),
        ).fetchone()
        if row is None:
            return None
        return conn.execute(
            "INSERT INTO attempts (delivery_id, event_id, subscriber_id, attempt, started_at,"
            " outcome) VALUES (?, ?, ?, ?, ?, 'pending')",
            (delivery_id, row[1], row[2], row[0], lease.now),
        ).lastrowid

    def _finish_tx(
        self,
        conn: _Conn,
        attempt_id: int,
        delivery_id: int,
        outcome: DeliveryOutcome,
        now: float,
        limit_s: float,
    ) -> None:
        a = attempt_row(outcome)
        conn.execute(
            "UPDATE attempts SET finished_at = ?, outcome = ?, status_code = ?,"
            " duration_ms = ?, error = ?, response_body = ? WHERE id = ?",
            (now, a.outcome, a.status_code, a.duration_ms, a.error, a.response_body, attempt_id),
        )
        status, nxt = outcome_row(outcome, now)
        row = conn.execute(
            "UPDATE deliveries SET status = ?, next_attempt_at = ?, lease_owner = NULL,"
            " lease_until = NULL, updated_at = ? WHERE id = ? RETURNING subscriber_id",
            (status, nxt, now, delivery_id),
        ).fetchone()
        if row is not None:
            self._track_streak(conn, row[0], outcome, now, limit_s)

    def start_attempt(self, delivery_id: int, lease: Lease) -> asyncio.Future[int | None]:
        return self._worker.call(self._start_tx, delivery_id, lease, durable=False)

    def finish_attempt(
        self,
        attempt_id: int,
        delivery_id: int,
        outcome: DeliveryOutcome,
        now: float,
        limit_s: float,
    ) -> asyncio.Future[None]:
        return self._worker.call(
            self._finish_tx, attempt_id, delivery_id, outcome, now, limit_s, durable=False
        )

    def record_attempt(
        self,
        delivery_id: int,
        outcome: DeliveryOutcome,
        started: Lease,
        now: float,
        limit_s: float,
    ) -> asyncio.Future[bool]:
        status, nxt = outcome_row(outcome, now)
        a = attempt_row(outcome)

        def tx(conn: _Conn) -> bool:
            # One update and one insert: the attempt is written finished, never "pending".
            row = conn.execute(
                "UPDATE deliveries SET attempts = attempts + 1, status = ?, next_attempt_at = ?,"
                " lease_owner = NULL, lease_until = NULL, updated_at = ?"
                " WHERE id = ? AND lease_owner = ? AND status = 'pending'"
                " RETURNING attempts, event_id, subscriber_id",
                (status, nxt, now, delivery_id, started.owner),
            ).fetchone()
            if row is None:
                return False
            conn.execute(
                "INSERT INTO attempts (delivery_id, event_id, subscriber_id, attempt, started_at,"
                " finished_at, outcome, status_code, duration_ms, error, response_body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    delivery_id,
                    row[1],
                    row[2],
                    row[0],
                    started.now,
                    now,
                    a.outcome,
                    a.status_code,
                    a.duration_ms,
                    a.error,
                    a.response_body,
                ),
            )
            self._track_streak(conn, row[2], outcome, now, limit_s)
            return True

        return self._worker.call(tx, durable=False)

    def _track_streak(
        self, conn: _Conn, sid: str, outcome: DeliveryOutcome, now: float, limit_s: float
    ) -> None:
        sub = next((s for s in self._cache.get(conn) if s.id == sid), None)
        change = streak_update(sub, outcome, now, limit_s) if sub is not None else None
        if change is None:  # the usual case: nothing to write
            return
        if change.disabled_reason is None:
            conn.execute(
                "UPDATE subscribers SET failing_since = ? WHERE id = ?",
                (change.failing_since, sid),
            )
        else:
            conn.execute(
                "UPDATE subscribers SET failing_since = ?, status = 'disabled',"
                " disabled_reason = ?, updated_at = ? WHERE id = ?",
                (change.failing_since, change.disabled_reason, now, sid),
            )
        self._cache.forget()

    async def release(self, delivery_ids: Sequence[int], owner: str) -> None:
        if not delivery_ids:
            return

        def tx(conn: _Conn) -> None:
            conn.executemany(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL"
                " WHERE id = ? AND lease_owner = ? AND status = 'pending'",
                [(d, owner) for d in delivery_ids],
            )

        await self._worker.call(tx, durable=False)

    def resend(
        self, event_id: str, now: float, subscriber_id: str | None
    ) -> asyncio.Future[list[int]]:
        def tx(conn: _Conn) -> list[int]:
            row = conn.execute(f"{EVENT_SQL} {LIVE} AND e.id = ?", (event_id,)).fetchone()
            if row is None:
                raise LookupError(f"no event {event_id}")
            ev = event_from_stored(row[0], row[1])
            targets = resend_targets(self._cache.get(conn), ev, subscriber_id)
            ids: list[int] = []
            for sid in targets:
                did = conn.execute(
                    "INSERT INTO deliveries (event_id, subscriber_id, status, attempts,"
                    " next_attempt_at, created_at, updated_at)"
                    " VALUES (?, ?, 'pending', 0, ?, ?, ?)",
                    (event_id, sid, now, now, now),
                ).lastrowid
                assert did is not None
                ids.append(did)
            return ids

        return self._worker.call(tx)
