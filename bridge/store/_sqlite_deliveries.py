"""SQLite store, second half: delivery claims and outcomes, resend and the read side."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from bridge.events import Event
from bridge.store._rows import (
    ATTEMPT_COLUMNS,
    attempt_from_row,
    event_from_stored,
    matching_subscribers,
    outcome_row,
)
from bridge.store._sqlite_worker import SqliteWorker
from bridge.store.base import (
    AttemptRecord,
    Delivery,
    DeliveryOutcome,
    Page,
    Subscriber,
)

__all__ = ["SqliteDeliveries"]

_Conn = sqlite3.Connection
_RESPONSE_BODY_MAX = 1024
# An event's stored body and the raw request whose object it refers to (if any).
_EVENT = (
    "SELECT e.body, i.payload FROM events e LEFT JOIN inbox i"
    " ON i.provider = e.source AND i.provider_event_id = e.object_of"
)


def _capped(body: str | None) -> str | None:
    return body[:_RESPONSE_BODY_MAX] if body is not None else None


class SqliteDeliveries:
    """Mixed into :class:`bridge.store.sqlite.SqliteStore`."""

    _worker: SqliteWorker
    _subscribers: list[Subscriber] | None

    def _subs(self, conn: _Conn) -> list[Subscriber]:
        raise NotImplementedError

    def _is_failing(self, conn: _Conn, sid: str) -> bool:
        """Whether subscriber ``sid`` has a failure streak, from the subscriber cache (this
        store is the only writer of its file, and every change it makes resets the cache)."""
        return any(s.failing_since is not None for s in self._subs(conn) if s.id == sid)

    async def claim_due(
        self,
        *,
        now: float,
        owner: str,
        lease_s: float,
        limit: int,
        handlers: Sequence[str],
        exclude_subscribers: Sequence[str] = (),
    ) -> list[Delivery]:
        def tx(conn: _Conn) -> list[Delivery]:
            allowed = [
                s.id
                for s in self._subs(conn)
                if s.status == "enabled"
                and s.id not in exclude_subscribers
                and (s.kind == "endpoint" or s.id[len("handler:") :] in handlers)
            ]
            if not allowed:
                return []
            marks = ",".join("?" * len(allowed))
            rows = conn.execute(
                "UPDATE deliveries SET lease_owner = ?, lease_until = ? WHERE id IN ("
                " SELECT id FROM deliveries WHERE status = 'pending' AND next_attempt_at <= ?"
                " AND (lease_until IS NULL OR lease_until < ?)"
                f" AND subscriber_id IN ({marks}) ORDER BY next_attempt_at, id LIMIT ?)"
                " RETURNING id, event_id, subscriber_id, attempts, next_attempt_at, created_at",
                (owner, now + lease_s, now, now, *allowed, limit),
            ).fetchall()
            out: list[Delivery] = []
            for r in rows:
                row = conn.execute(f"{_EVENT} WHERE e.id = ?", (r[1],)).fetchone()
                if row is None:
                    continue
                ev = event_from_stored(row[0], row[1])
                out.append(Delivery(int(r[0]), ev, r[2], int(r[3]), r[4], "pending", r[5]))
            out.sort(key=lambda d: (d.next_attempt_at, d.id))
            return out

        return await self._worker.call(tx, durable=False)

    def _start_tx(
        self, conn: _Conn, delivery_id: int, now: float, owner: str, lease_s: float
    ) -> int | None:
        row = conn.execute(
            "UPDATE deliveries SET attempts = attempts + 1, updated_at = ?, lease_until = ?"
            " WHERE id = ? AND lease_owner = ? AND status = 'pending'"
            " RETURNING attempts, event_id, subscriber_id",
            (now, now + lease_s, delivery_id, owner),
        ).fetchone()
        if row is None:
            return None
        return conn.execute(
            "INSERT INTO attempts (delivery_id, event_id, subscriber_id, attempt, started_at,"
            " outcome) VALUES (?, ?, ?, ?, ?, 'pending')",
            (delivery_id, row[1], row[2], row[0], now),
        ).lastrowid

    def _finish_tx(
        self,
        conn: _Conn,
        attempt_id: int,
        delivery_id: int,
        outcome: DeliveryOutcome,
        now: float,
        disable_after_failing_s: float,
    ) -> None:
        body = _capped(outcome.response_body)
        conn.execute(
            "UPDATE attempts SET finished_at = ?, outcome = ?, status_code = ?,"
            " duration_ms = ?, error = ?, response_body = ? WHERE id = ?",
            (
                now,
                "succeeded" if outcome.delivered else "failed",
                outcome.status_code,
                outcome.duration_ms,
                outcome.error,
                body,
                attempt_id,
            ),
        )
        status, nxt = outcome_row(outcome, now)
        row = conn.execute(
            "UPDATE deliveries SET status = ?, next_attempt_at = ?, lease_owner = NULL,"
            " lease_until = NULL, updated_at = ? WHERE id = ? RETURNING subscriber_id",
            (status, nxt, now, delivery_id),
        ).fetchone()
        if row is not None:
            self._track_streak(conn, row[0], outcome, now, disable_after_failing_s)

    async def start_attempt(
        self, delivery_id: int, *, now: float, owner: str, lease_s: float
    ) -> int | None:
        return await self._worker.call(
            self._start_tx, delivery_id, now, owner, lease_s, durable=False
        )

    async def finish_attempt(
        self,
        attempt_id: int,
        delivery_id: int,
        outcome: DeliveryOutcome,
        *,
        now: float,
        disable_after_failing_s: float,
    ) -> None:
        await self._worker.call(
            self._finish_tx,
            attempt_id,
            delivery_id,
            outcome,
            now,
            disable_after_failing_s,
            durable=False,
        )

    async def record_attempt(
        self,
        delivery_id: int,
        outcome: DeliveryOutcome,
        *,
        started_at: float,
        now: float,
        owner: str,
        lease_s: float,
        disable_after_failing_s: float,
    ) -> bool:
        status, nxt = outcome_row(outcome, now)

        def tx(conn: _Conn) -> bool:
            # One update and one insert: the attempt is written finished, never "pending".
            row = conn.execute(
                "UPDATE deliveries SET attempts = attempts + 1, status = ?, next_attempt_at = ?,"
                " lease_owner = NULL, lease_until = NULL, updated_at = ?"
                " WHERE id = ? AND lease_owner = ? AND status = 'pending'"
                " RETURNING attempts, event_id, subscriber_id",
                (status, nxt, now, delivery_id, owner),
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
                    started_at,
                    now,
                    "succeeded" if outcome.delivered else "failed",
                    outcome.status_code,
                    outcome.duration_ms,
                    outcome.error,
                    _capped(outcome.response_body),
                ),
            )
            self._track_streak(conn, row[2], outcome, now, disable_after_failing_s)
            return True

        return await self._worker.call(tx, durable=False)

    def _track_streak(
        self, conn: _Conn, sid: str, outcome: DeliveryOutcome, now: float, limit_s: float
    ) -> None:
        if outcome.delivered:
            if not self._is_failing(conn, sid):  # the usual case: nothing to clear
                return
            changed = conn.execute(
                "UPDATE subscribers SET failing_since = NULL WHERE id = ?"
                " AND failing_since IS NOT NULL",
                (sid,),
            ).rowcount
        elif outcome.disable_endpoint:
            changed = conn.execute(
                "UPDATE subscribers SET status = 'disabled', disabled_reason = ?, updated_at = ?"
                " WHERE id = ?",
                (outcome.disable_endpoint, now, sid),
            ).rowcount
        else:
            conn.execute(
                "UPDATE subscribers SET failing_since = ? WHERE id = ? AND failing_since IS NULL",
                (now, sid),
            )
            changed = conn.execute(
                "UPDATE subscribers SET status = 'disabled', disabled_reason = ?, updated_at = ?"
                " WHERE id = ? AND kind = 'endpoint' AND status = 'enabled'"
                " AND failing_since <= ?",
                (f"failing for {limit_s:.0f}s straight", now, sid, now - limit_s),
            ).rowcount
            changed = 1  # failing_since may have been set
        if changed:
            self._subscribers = None

    async def release(self, delivery_ids: Sequence[int], *, owner: str) -> None:
        if not delivery_ids:
            return

        def tx(conn: _Conn) -> None:
            conn.executemany(
                "UPDATE deliveries SET lease_owner = NULL, lease_until = NULL"
                " WHERE id = ? AND lease_owner = ? AND status = 'pending'",
                [(d, owner) for d in delivery_ids],
            )

        await self._worker.call(tx, durable=False)

    async def resend(
        self, event_id: str, *, now: float, subscriber_id: str | None = None
    ) -> list[int]:
        def tx(conn: _Conn) -> list[int]:
            row = conn.execute(f"{_EVENT} WHERE e.id = ?", (event_id,)).fetchone()
            if row is None:
                raise LookupError(f"no event {event_id}")
            ev = event_from_stored(row[0], row[1])
            if subscriber_id is not None:
                targets = [subscriber_id]
            else:
                subs = [s for s in self._subs(conn) if s.kind == "endpoint"]
                targets = matching_subscribers(subs, ev)
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

        return await self._worker.call(tx)

    # -- reads ----------------------------------------------------------------------------------
    async def list_events(
        self, *, type: str | None = None, offset: int = 0, limit: int | None = 20
    ) -> Page[Event]:
        def tx(conn: _Conn) -> Page[Event]:
            where, args = ("WHERE e.type = ?", [type]) if type else ("", [])
            (count,) = conn.execute(f"SELECT COUNT(*) FROM events e {where}", args).fetchone()
            rows = conn.execute(
                f"{_EVENT} {where} ORDER BY e.seq DESC LIMIT ? OFFSET ?",
                [*args, -1 if limit is None else limit, offset],
            ).fetchall()
            return Page(int(count), [event_from_stored(r[0], r[1]) for r in rows])

        return await self._worker.call(tx, durable=False)

    async def get_event(self, event_id: str) -> Event | None:
        def tx(conn: _Conn) -> Event | None:
            row = conn.execute(f"{_EVENT} WHERE e.id = ?", (event_id,)).fetchone()
            return event_from_stored(row[0], row[1]) if row else None

        return await self._worker.call(tx, durable=False)

    async def list_attempts(
        self,
        *,
        event_id: str | None = None,
        subscriber_id: str | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> Page[AttemptRecord]:
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

        return await self._worker.call(tx, durable=False)

    async def counts(self) -> dict[str, int]:
        def tx(conn: _Conn) -> dict[str, int]:
            q = {
                "inbox": "SELECT COUNT(*) FROM inbox",
                "ignored": "SELECT COUNT(*) FROM inbox WHERE status = 'ignored'",
                "events": "SELECT COUNT(*) FROM events",
                "pending": "SELECT COUNT(*) FROM deliveries WHERE status = 'pending'",
                "dead": "SELECT COUNT(*) FROM deliveries WHERE status = 'dead'",
                "held": "SELECT COUNT(*) FROM deferred",
                "pending_fetch": "SELECT COUNT(*) FROM inbox WHERE status = 'pending_fetch'",
            }
            return {k: int(conn.execute(sql).fetchone()[0]) for k, sql in q.items()}

        return await self._worker.call(tx, durable=False)
