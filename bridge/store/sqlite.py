"""The embedded SQLite store (one process): WAL, group commit on one writer thread.

Semantics are those of :mod:`bridge.store.base`; the single writer thread makes every
transaction serial, so claims can never overlap within the process.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import orjson

from adapters.base import Deferred, Normalized
from bridge.events import Event
from bridge.store._rows import (
    SUBSCRIBER_COLUMNS,
    inbox_status,
    leased_deliveries,
    new_in_order,
    plan_deliveries,
    stored_body,
    subscriber_from_row,
    subscriber_params,
)
from bridge.store._sqlite_deliveries import SqliteDeliveries
from bridge.store._sqlite_worker import SqliteWorker
from bridge.store.base import (
    ClaimedDeferred,
    Delivery,
    InboxRecord,
    IngestResult,
    Page,
    Store,
    Subscriber,
    SubscriberKind,
)
from bridge.store.sqlite_schema import migrate

__all__ = ["SqliteStore"]

_Conn = sqlite3.Connection


@functools.lru_cache(maxsize=64)
def _insert_events_sql(n: int) -> str:
    """The statement inserting ``n`` events (built once per count: the writer runs it for
    every request)."""
    return (
        "INSERT OR IGNORE INTO events (id, dedupe_key, type, source, source_event_id,"
        " created, stored_at, body, object_of) VALUES "
        + ",".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * n)
        + " RETURNING id"
    )


class SqliteStore(SqliteDeliveries, Store):
    """See the module docstring. ``path`` may be ``:memory:`` for tests."""

    def __init__(self, path: str, *, synchronous: Literal["full", "normal"] = "full") -> None:
        self.path = path
        self._worker = SqliteWorker(
            path, migrate, synchronous=synchronous, on_rollback=self._forget_subscribers
        )
        self._subscribers: list[Subscriber] | None = None  # cache; the writer thread owns it

    @classmethod
    def from_url(cls, url: str, *, synchronous: Literal["full", "normal"] = "full") -> SqliteStore:
        """``sqlite:///rel.db`` (relative to the working directory), ``sqlite:////abs.db``,
        ``sqlite://:memory:``."""
        rest = url[len("sqlite://") :]
        if rest in (":memory:", "/:memory:"):
            return cls(":memory:", synchronous=synchronous)
        if not rest.startswith("/"):
            raise ValueError("sqlite url must look like sqlite:///relative.db or sqlite:////abs.db")
        path = rest[1:]
        if path and not path.startswith("/"):
            path = str(Path.cwd() / path)
        return cls(path, synchronous=synchronous)

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._worker.start()

    async def close(self) -> None:
        self._worker.stop()

    # -- helpers run on the writer thread --------------------------------------------------------
    def _forget_subscribers(self) -> None:
        """Drop the subscriber cache: it may hold rows read inside work just rolled back."""
        self._subscribers = None

    def _subs(self, conn: _Conn) -> list[Subscriber]:
        if self._subscribers is None:
            rows = conn.execute(f"SELECT {SUBSCRIBER_COLUMNS} FROM subscribers").fetchall()
            self._subscribers = [subscriber_from_row(r) for r in rows]
        return self._subscribers

    def _insert_events(
        self,
        conn: _Conn,
        events: Sequence[Event],
        now: float,
        owner: str,
        lease_until: float,
        local: set[str],
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
                    now,
                    *stored_body(ev, record),
                )
            ],
        ).fetchall()
        new = new_in_order(events, {r[0] for r in rows})
        plan = plan_deliveries(new, self._subs(conn), local)
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
                    now,
                    owner if p.leased else None,
                    lease_until if p.leased else None,
                    now,
                    now,
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
                [v for d, e, sid in firsts for v in (d, e, sid, now)],
            ).fetchall()
            attempt_ids = {int(r[1]): int(r[0]) for r in arows}
        return new, leased_deliveries(plan, ids, attempt_ids, now)

    def _apply_deferred(
        self, conn: _Conn, deferred: Sequence[Deferred], now: float, window_s: float
    ) -> tuple[list[Event], int, int]:
        emit: list[Event] = []
        held = dropped = 0
        for d in deferred:
            if conn.execute(
                "SELECT 1 FROM pi_links WHERE payment_intent = ?", (d.payment_intent,)
            ).fetchone():
                dropped += 1
            elif (
                window_s <= 0
                or conn.execute(
                    "SELECT 1 FROM pi_standalone WHERE payment_intent = ?", (d.payment_intent,)
                ).fetchone()
            ):
                emit.extend(d.events)
            else:
                conn.execute(
                    "INSERT INTO deferred (payment_intent, livemode, decide_at, events,"
                    " created_at) VALUES (?, ?, ?, ?, ?)",
                    (
                        d.payment_intent,
                        int(d.livemode),
                        now + window_s,
                        orjson.dumps([e.model_dump(mode="json") for e in d.events]),
                        now,
                    ),
                )
                held += 1
        return emit, held, dropped

    def _apply_links(self, conn: _Conn, n: Normalized) -> tuple[list[Event], int]:
        """Store links (dropping held decisions they answer) and standalone PIs (releasing
        held decisions at once)."""
        dropped = 0
        for link in n.links:
            conn.execute(
                "INSERT OR IGNORE INTO pi_links (payment_intent, invoice) VALUES (?, ?)",
                (link.payment_intent, link.invoice),
            )
            dropped += conn.execute(
                "DELETE FROM deferred WHERE payment_intent = ?", (link.payment_intent,)
            ).rowcount
        released: list[Event] = []
        for pi in n.standalone_payment_intents:
            conn.execute("INSERT OR IGNORE INTO pi_standalone (payment_intent) VALUES (?)", (pi,))
            if conn.execute("SELECT 1 FROM pi_links WHERE payment_intent = ?", (pi,)).fetchone():
                continue
            for (blob,) in conn.execute(
                "DELETE FROM deferred WHERE payment_intent = ? RETURNING events", (pi,)
            ).fetchall():
                released.extend(Event.model_validate(e) for e in orjson.loads(blob))
        return released, dropped

    def _ingest_tx(
        self,
        conn: _Conn,
        record: InboxRecord,
        n: Normalized,
        now: float,
        window_s: float,
        owner: str,
        lease_s: float,
        local: set[str],
    ) -> IngestResult:
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
                record.payload,
            ),
        )
        if cur.rowcount == 0:
            return IngestResult(duplicate=True)
        released, dropped = self._apply_links(conn, n)
        emit, held, dropped_now = self._apply_deferred(conn, n.deferred, now, window_s)
        events, deliveries = self._insert_events(
            conn, [*n.events, *released, *emit], now, owner, now + lease_s, local, record
        )
        return IngestResult(False, events, deliveries, held, dropped + dropped_now)

    # -- ingress ------------------------------------------------------------------------------
    async def ingest(
        self,
        record: InboxRecord,
        normalized: Normalized,
        *,
        now: float,
        correlation_window_s: float,
        owner: str,
        lease_s: float,
        local_handlers: Sequence[str],
    ) -> IngestResult:
        return await self._worker.call(
            self._ingest_tx,
            record,
            normalized,
            now,
            correlation_window_s,
            owner,
            lease_s,
            set(local_handlers),
        )

    async def claim_pending_fetches(
        self, *, now: float, owner: str, lease_s: float, limit: int
    ) -> list[InboxRecord]:
        def tx(conn: _Conn) -> list[InboxRecord]:
            rows = conn.execute(
                "UPDATE inbox SET lease_owner = ?, lease_until = ? WHERE rowid IN ("
                " SELECT rowid FROM inbox WHERE status = 'pending_fetch'"
                " AND (lease_until IS NULL OR lease_until < ?) ORDER BY received_at LIMIT ?)"
                " RETURNING provider, provider_event_id, type, received_at, payload",
                (owner, now + lease_s, now, limit),
            ).fetchall()
            return [InboxRecord(r[0], r[1], r[2], r[3], bytes(r[4])) for r in rows]

        return await self._worker.call(tx, durable=False)

    async def complete_fetch(
        self,
        pending: InboxRecord,
        fetched: InboxRecord,
        normalized: Normalized,
        *,
        now: float,
        correlation_window_s: float,
        owner: str,
        lease_s: float,
        local_handlers: Sequence[str],
    ) -> IngestResult:
        def tx(conn: _Conn) -> IngestResult:
            done = conn.execute(
                "UPDATE inbox SET status = 'processed', lease_owner = NULL, lease_until = NULL"
                " WHERE provider = ? AND provider_event_id = ? AND status = 'pending_fetch'",
                (pending.provider, pending.provider_event_id),
            ).rowcount
            if not done:
                return IngestResult(duplicate=True)
            return self._ingest_tx(
                conn,
                fetched,
                normalized,
                now,
                correlation_window_s,
                owner,
                lease_s,
                set(local_handlers),
            )

        return await self._worker.call(tx)

    async def claim_due_deferred(
        self, *, now: float, owner: str, lease_s: float, limit: int
    ) -> list[ClaimedDeferred]:
        def tx(conn: _Conn) -> list[ClaimedDeferred]:
            rows = conn.execute(
                "UPDATE deferred SET lease_owner = ?, lease_until = ? WHERE id IN ("
                " SELECT id FROM deferred WHERE decide_at <= ?"
                " AND (lease_until IS NULL OR lease_until < ?) ORDER BY decide_at LIMIT ?)"
                " RETURNING id, payment_intent, livemode, events",
                (owner, now + lease_s, now, now, limit),
            ).fetchall()
            return [
                ClaimedDeferred(
                    int(r[0]),
                    r[1],
                    bool(r[2]),
                    [Event.model_validate(e) for e in orjson.loads(r[3])],
                )
                for r in rows
            ]

        return await self._worker.call(tx, durable=False)

    async def resolve_deferred(
        self,
        deferred_id: int,
        *,
        emit: bool,
        now: float,
        owner: str,
        lease_s: float,
        local_handlers: Sequence[str],
        invoice: str | None = None,
    ) -> IngestResult:
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
            events = [Event.model_validate(e) for e in orjson.loads(row[1])]
            new, deliveries = self._insert_events(
                conn, events, now, owner, now + lease_s, set(local_handlers), None
            )
            return IngestResult(False, new, deliveries)

        return await self._worker.call(tx)

    # -- subscribers --------------------------------------------------------------------------
    async def put_subscriber(self, sub: Subscriber) -> Subscriber:
        def tx(conn: _Conn) -> Subscriber:
            marks = ", ".join("?" * len(SUBSCRIBER_COLUMNS.split(",")))
            conn.execute(
                f"INSERT OR REPLACE INTO subscribers ({SUBSCRIBER_COLUMNS}) VALUES ({marks})",
                subscriber_params(sub),
            )
            self._subscribers = None
            return sub

        return await self._worker.call(tx)

    async def get_subscriber(self, subscriber_id: str) -> Subscriber | None:
        def tx(conn: _Conn) -> Subscriber | None:
            for s in self._subs(conn):
                if s.id == subscriber_id:
                    return s
            return None

        return await self._worker.call(tx, durable=False)

    async def delete_subscriber(self, subscriber_id: str) -> bool:
        def tx(conn: _Conn) -> bool:
            gone = conn.execute("DELETE FROM subscribers WHERE id = ?", (subscriber_id,)).rowcount
            conn.execute(
                "DELETE FROM deliveries WHERE subscriber_id = ? AND status = 'pending'",
                (subscriber_id,),
            )
            self._subscribers = None
            return gone > 0

        return await self._worker.call(tx)

    async def list_subscribers(
        self,
        *,
        kind: SubscriberKind | None = None,
        livemode: bool | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[Subscriber]:
        def tx(conn: _Conn) -> Page[Subscriber]:
            subs = [
                s
                for s in sorted(self._subs(conn), key=lambda s: (-s.created_at, s.id))
                if (kind is None or s.kind == kind) and (livemode is None or s.livemode == livemode)
            ]
            return Page(len(subs), subs[offset : offset + limit])

        return await self._worker.call(tx, durable=False)
