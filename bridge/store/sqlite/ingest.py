"""SQLite store, ingest: the inbox row, the canonical events that are new facts, their
deliveries and the first attempts of the leased endpoint deliveries, in one transaction on the
writer thread (:mod:`bridge.store.sqlite.worker`)."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Sequence

from bridge.events import Event, event_refs
from bridge.holds import plan_ingest
from bridge.normalized import Normalized
from bridge.store.base import Delivery, InboxRecord, IngestResult
from bridge.store.bodies import stored_body
from bridge.store.compression import packed
from bridge.store.parts import Writing
from bridge.store.planning import inbox_status, leased_deliveries, new_in_order, plan_deliveries
from bridge.store.sqlite.links import read_known, write_plan
from bridge.store.sqlite.subscribers import SubscriberCache
from bridge.store.sqlite.worker import SqliteWorker

__all__ = ["SqliteIngest"]

_Conn = sqlite3.Connection


@functools.lru_cache(maxsize=64)
def _insert_events_sql(n: int) -> str:
    """The statement inserting ``n`` events (built once per count: the writer runs it for
    every request)."""
    return (
        "INSERT OR IGNORE INTO events (id, dedupe_key, type, source, source_event_id,"
        " created, stored_at, body, object_of, customer, subscription, invoice) VALUES "
        + ",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * n)
        + " RETURNING id"
    )


class SqliteIngest:
    """The ingest part of the SQLite store; :meth:`tx` and :meth:`insert_events` are the
    transaction bodies the correlation part reuses."""

    def __init__(self, worker: SqliteWorker, cache: SubscriberCache) -> None:
        self._worker = worker
        self._cache = cache

    def ingest(
        self, record: InboxRecord, normalized: Normalized, w: Writing
    ) -> asyncio.Future[IngestResult]:
        return self._worker.call(self.tx, record, normalized, w)

    def insert_events(
        self,
        conn: _Conn,
        events: Sequence[Event],
        w: Writing,
        record: InboxRecord | None,
    ) -> tuple[list[Event], list[Delivery]]:
        """Insert the events that are new facts (bodies sharing ``record``'s object, see
        :func:`stored_body`), their deliveries and the first attempts of the leased endpoint
        deliveries: one statement each, whatever the count (every statement costs the writer
        thread a GIL round trip)."""
        if not events:
            return [], []
        rows = conn.execute(
            _insert_events_sql(len(events)),
            [
                value
                for ev in events
                for value in (
                    ev.id,
                    ev.dedupe_key,
                    ev.type,
                    ev.source,
                    ev.source_event_id,
                    ev.created,
                    w.now,
                    *stored_body(ev, record),
                    *event_refs(ev),
                )
            ],
        ).fetchall()
        new = new_in_order(events, {r[0] for r in rows})
        plan = plan_deliveries(new, self._cache.get(conn), w.local)
        if not plan:
            return new, []
        rows = conn.execute(
            "INSERT INTO deliveries (event_id, subscriber_id, status, attempts, next_attempt_at,"
            " lease_owner, lease_until, created_at, updated_at) VALUES "
            + ",".join(["(?, ?, 'pending', ?, ?, ?, ?, ?, ?)"] * len(plan))
            + " RETURNING id, event_id, subscriber_id",
            [
                value
                for p in plan
                for value in (
                    p.event.id,
                    p.subscriber_id,
                    int(p.first_attempt),
                    w.now,
                    w.owner if p.leased else None,
                    w.lease_until if p.leased else None,
                    w.now,
                    w.now,
                )
            ],
        ).fetchall()
        ids = {(r[1], r[2]): int(r[0]) for r in rows}
        firsts = [
            (ids[(p.event.id, p.subscriber_id)], p.event.id, p.subscriber_id)
            for p in plan
            if p.first_attempt
        ]
        attempt_ids: dict[int, int] = {}
        if firsts:  # the first attempts, so the dispatcher sends without another commit
            arows = conn.execute(
                "INSERT INTO attempts (delivery_id, event_id, subscriber_id, attempt, started_at,"
                " outcome) VALUES "
                + ",".join(["(?, ?, ?, 1, ?, 'pending')"] * len(firsts))
                + " RETURNING id, delivery_id",
                [v for d, e, sid in firsts for v in (d, e, sid, w.now)],
            ).fetchall()
            attempt_ids = {int(r[1]): int(r[0]) for r in arows}
        return new, leased_deliveries(plan, ids, attempt_ids, w.now)

    def tx(self, conn: _Conn, record: InboxRecord, n: Normalized, w: Writing) -> IngestResult:
        status = inbox_status(n)
        cur = conn.execute(
            "INSERT OR IGNORE INTO inbox (provider, provider_event_id, type, received_at, status,"
            " ignored_reason, event_count, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.provider,
                record.provider_event_id,
                record.type,
                record.received_at,
                status,
                n.ignored_reason,
                len(n.events),
                packed(record.payload),
            ),
        )
        if cur.rowcount == 0:
            return IngestResult(duplicate=True)
        if not n.touches_payment_intents:
            events, deliveries = self.insert_events(conn, n.events, w, record)
            return IngestResult(False, events, deliveries)
        known = read_known(conn, n)
        plan = plan_ingest(n, known, now=w.now, window_s=w.window_s, lookups=w.lookups)
        write_plan(conn, plan, w.now)
        events, deliveries = self.insert_events(conn, plan.emit, w, record)
        return IngestResult(False, events, deliveries, len(plan.holds), plan.dropped)
