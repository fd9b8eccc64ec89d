"""PostgreSQL store, deliveries: claims, attempts and their outcomes (with the subscriber's
failure streak), leases and resends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bridge.store.base import Delivery, DeliveryOutcome, Subscriber
from bridge.store.bodies import event_from_stored
from bridge.store.parts import Lease
from bridge.store.planning import (
    attempt_row,
    claimable,
    outcome_row,
    resend_targets,
    streak_update,
)
from bridge.store.postgres.batch import BatchedWrites
from bridge.store.postgres.pool import PgPool
from bridge.store.postgres.reads import EVENT_SQL, LIVE
from bridge.store.postgres.subscribers import SubscriberCache
from bridge.store.rows import SUBSCRIBER_COLUMNS, subscriber_from_row

__all__ = ["PgDeliveries"]

# Delivered attempts, many in one statement: the attempt rows, the delivery rows, and the end of
# the failure streaks of their subscribers (locked in id order: two instances never wait on each
# other's subscriber rows in a cycle; attempt and delivery rows are only ever this instance's,
# under its lease). Data-modifying WITH parts always run to completion.
_FINISH_DELIVERED = (
    "WITH v AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::float8[],"
    " $5::text[], $6::text[], $7::float8[]) AS v(attempt_id, delivery_id, status_code,"
    " duration_ms, error, body, at)),"
    " a AS (UPDATE attempts t SET finished_at = v.at, outcome = 'succeeded',"
    " status_code = v.status_code, duration_ms = v.duration_ms, error = v.error,"
    " response_body = v.body FROM v WHERE t.id = v.attempt_id),"
    " d AS (UPDATE deliveries t SET status = 'delivered', next_attempt_at = v.at,"
    " lease_owner = NULL, lease_until = NULL, updated_at = v.at FROM v"
    " WHERE t.id = v.delivery_id RETURNING t.subscriber_id)"
    " UPDATE subscribers SET failing_since = NULL WHERE id IN (SELECT id FROM subscribers"
    " WHERE id IN (SELECT subscriber_id FROM d) AND failing_since IS NOT NULL"
    " ORDER BY id FOR UPDATE)"
)
_Row = tuple[int, int, int | None, float | None, str | None, str | None, float]


class DeliveredOutcomes:
    """Writes the outcomes of delivered attempts together (:class:`BatchedWrites`): at 5,000
    deliveries/s a round trip per outcome was most of what PostgreSQL fan-out cost."""

    def __init__(self, db: PgPool, on_streak_cleared: Callable[[], None]) -> None:
        self._db = db
        self._cleared = on_streak_cleared
        self._batched: BatchedWrites[_Row, None] = BatchedWrites(self._write)

    async def record(self, row: _Row) -> None:
        """Raises :class:`StoreError` when the statement carrying ``row`` failed."""
        await self._batched.submit(row)

    async def _write(self, rows: list[_Row]) -> list[None]:
        columns = [list(col) for col in zip(*rows, strict=True)]
        async with self._db.conn(durable=False) as conn:
            done = await conn.execute(_FINISH_DELIVERED, *columns)
        if done != "UPDATE 0":  # failure streaks were cleared
            self._cleared()
        return [None] * len(rows)


# The subquery locks due rows with SKIP LOCKED, so concurrent claimers split the queue; a row
# another claimer leased and committed meanwhile is re-checked against the lease condition
# (READ COMMITTED re-evaluation) and dropped, so no delivery is handed out twice.
_CLAIM = """
WITH due AS (
    SELECT id FROM deliveries
    WHERE status = 'pending' AND next_attempt_at <= $3
      AND (lease_until IS NULL OR lease_until < $3)
      AND subscriber_id = ANY($5::text[])
    ORDER BY next_attempt_at, id
    LIMIT $4
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE deliveries d SET lease_owner = $1, lease_until = $2
    FROM due WHERE d.id = due.id
    RETURNING d.id, d.event_id, d.subscriber_id, d.attempts, d.next_attempt_at, d.created_at
)
SELECT c.id, c.subscriber_id, c.attempts, c.next_attempt_at, c.created_at, e.body, i.payload
FROM claimed c JOIN events e ON e.id = c.event_id
LEFT JOIN inbox i ON i.provider = e.source AND i.provider_event_id = e.object_of
ORDER BY c.next_attempt_at, c.id
"""

_START_ATTEMPT = """
WITH d AS (
    UPDATE deliveries SET attempts = attempts + 1, updated_at = $2, lease_until = $3
    WHERE id = $1 AND lease_owner = $4 AND status = 'pending'
    RETURNING id, attempts, event_id, subscriber_id
)
INSERT INTO attempts (delivery_id, event_id, subscriber_id, attempt, started_at, outcome)
SELECT id, event_id, subscriber_id, attempts, $2, 'pending' FROM d
RETURNING id
"""


class PgDeliveries:
    """The delivery part of the PostgreSQL store."""

    def __init__(self, db: PgPool, cache: SubscriberCache) -> None:
        self._db = db
        self._cache = cache
        self._delivered = DeliveredOutcomes(db, cache.forget)

    async def claim_due(
        self, lease: Lease, limit: int, handlers: Sequence[str], exclude: Sequence[str]
    ) -> list[Delivery]:
        """See :meth:`Store.claim_due`; raises :class:`StoreError`."""
        async with self._db.tx(durable=False) as conn:
            rows = await conn.fetch(f"SELECT {SUBSCRIBER_COLUMNS} FROM subscribers")
            allowed = claimable([subscriber_from_row(r) for r in rows], handlers, exclude)
            if not allowed:
                return []
            rows = await conn.fetch(_CLAIM, lease.owner, lease.until, lease.now, limit, allowed)
        return [
            Delivery(
                int(r["id"]),
                event_from_stored(r["body"], r["payload"]),
                r["subscriber_id"],
                int(r["attempts"]),
                r["next_attempt_at"],
                "pending",
                r["created_at"],
            )
            for r in rows
        ]

    async def start_attempt(self, delivery_id: int, lease: Lease) -> int | None:
        """See :meth:`Store.start_attempt`; raises :class:`StoreError`."""
        async with self._db.conn(durable=False) as conn:
            aid = await conn.fetchval(
                _START_ATTEMPT, delivery_id, lease.now, lease.until, lease.owner
            )
        return int(aid) if aid is not None else None

    async def finish_attempt(
        self,
        attempt_id: int,
        delivery_id: int,
        outcome: DeliveryOutcome,
        now: float,
        limit_s: float,
    ) -> None:
        """See :meth:`Store.finish_attempt`; raises :class:`StoreError`."""
        a = attempt_row(outcome)
        status, nxt = outcome_row(outcome, now)
        if outcome.delivered:  # the usual case: written with the others waiting
            await self._delivered.record(
                (
                    attempt_id,
                    delivery_id,
                    a.status_code,
                    a.duration_ms,
                    a.error,
                    a.response_body,
                    now,
                )
            )
            return
        async with self._db.tx(durable=False) as conn:
            await conn.execute(
                "UPDATE attempts SET finished_at = $1, outcome = $2, status_code = $3,"
                " duration_ms = $4, error = $5, response_body = $6 WHERE id = $7",
                now,
                a.outcome,
                a.status_code,
                a.duration_ms,
                a.error,
                a.response_body,
                attempt_id,
            )
            sid = await conn.fetchval(
                "UPDATE deliveries SET status = $1, next_attempt_at = $2, lease_owner = NULL,"
                " lease_until = NULL, updated_at = $3 WHERE id = $4 RETURNING subscriber_id",
                status,
                nxt,
                now,
                delivery_id,
            )
            changed = sid is not None and await self._track_streak(conn, sid, outcome, now, limit_s)
        if changed:
            self._cache.forget()

    async def record_attempt(
        self,
        delivery_id: int,
        outcome: DeliveryOutcome,
        started: Lease,
        now: float,
        limit_s: float,
    ) -> bool:
        """See :meth:`Store.record_attempt`: started, then finished."""
        attempt_id = await self.start_attempt(delivery_id, started)
        if attempt_id is None:
            return False
        await self.finish_attempt(attempt_id, delivery_id, outcome, now, limit_s)
        return True

    @staticmethod
    async def _track_streak(
        conn: Any, sid: str, outcome: DeliveryOutcome, now: float, limit_s: float
    ) -> bool:
        """Keep the subscriber's failure streak (its row locked, so instances failing on the
        same endpoint at once decide one after the other); True when its row changed."""
        row = await conn.fetchrow(
            f"SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE id = $1 FOR UPDATE", sid
        )
        change = streak_update(subscriber_from_row(row), outcome, now, limit_s) if row else None
        if change is None:
            return False
        if change.disabled_reason is None:
            await conn.execute(
                "UPDATE subscribers SET failing_since = $1 WHERE id = $2", change.failing_since, sid
            )
        else:
            await conn.execute(
                "UPDATE subscribers SET failing_since = $1, status = 'disabled',"
                " disabled_reason = $2, updated_at = $3 WHERE id = $4",
                change.failing_since,
                change.disabled_reason,
                now,
                sid,
            )
        return True

    async def release(self, delivery_ids: Sequence[int], owner: str) -> None:
        """See :meth:`Store.release`; raises :class:`StoreError`."""
        if not delivery_ids:
            return
        async with self._db.conn(durable=False) as conn:
            await conn.execute(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL"
                " WHERE id = ANY($1::bigint[]) AND lease_owner = $2 AND status = 'pending'",
                list(delivery_ids),
                owner,
            )

    async def resend(self, event_id: str, now: float, subscriber_id: str | None) -> list[int]:
        """See :meth:`Store.resend`; raises :class:`LookupError` for an unknown event and
        :class:`StoreError` when the database fails."""
        async with self._db.tx() as conn:
            row = await conn.fetchrow(f"{EVENT_SQL} {LIVE} AND e.id = $1", event_id)
            if row is None:
                raise LookupError(f"no event {event_id}")
            subs: list[Subscriber] = []
            if subscriber_id is None:
                rows = await conn.fetch(f"SELECT {SUBSCRIBER_COLUMNS} FROM subscribers")
                subs = [subscriber_from_row(r) for r in rows]
            targets = resend_targets(subs, event_from_stored(row[0], row[1]), subscriber_id)
            rows = await conn.fetch(
                "INSERT INTO deliveries (event_id, subscriber_id, status, attempts,"
                " next_attempt_at, created_at, updated_at)"
                " SELECT $1, s, 'pending', 0, $2, $2, $2 FROM unnest($3::text[]) AS s"
                " RETURNING id",
                event_id,
                now,
                targets,
            )
        return sorted(int(r["id"]) for r in rows)
