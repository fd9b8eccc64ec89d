"""The PostgreSQL store (asyncpg): several paybridge instances share one database.

Semantics are those of :mod:`bridge.store.base`, method by method as in
:class:`bridge.store.sqlite.SqliteStore`. What makes it safe with several instances:

- **Uniques, never violations.** The inbox row and each event are written with
  ``INSERT … ON CONFLICT DO NOTHING RETURNING``: when two instances ingest the same provider
  event (or two provider events naming the same fact) at once, the second waits for the
  first to commit and then inserts nothing; no transaction fails with a unique violation.
- **PaymentIntent decisions are serialized per PI.** Every transaction that stores a link,
  a standalone PI, a held decision or resolves one first takes
  ``pg_advisory_xact_lock(hashtextextended('pi:' || pi, 0))``. Under READ COMMITTED each later
  statement sees what the previous lock holder committed, so a link and a held decision of
  the same PI can never both miss each other (no "emit" of a decision whose link won).
- **No deadlocks.** A transaction takes its locks in one fixed order: the inbox row, then
  its PI locks (sorted, one statement), then its events' dedupe locks (sorted, one
  statement, only when it inserts several events). Cycles are impossible.
- **Claims** use ``FOR UPDATE SKIP LOCKED`` and a lease; ``start_attempt`` succeeds only
  for the lease owner, so two live instances never send the same delivery.

Subscribers are read from the database on every claim and admin call. On the ingest path
they are cached per instance for at most ``subscriber_cache_s`` (default 1 s; 0 disables):
another instance's change is seen within that bound, this instance's own changes at once.

Every database failure raises :class:`bridge.errors.StoreError`; the pool reconnects by
itself when the database comes back.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson

from adapters.base import Deferred, Normalized
from bridge.errors import StoreError
from bridge.events import Event
from bridge.store._pg_batch import Gathered
from bridge.store._pg_conn import PgPool
from bridge.store._pg_deliveries import DeliveredOutcomes, PgDeliveries
from bridge.store._pg_subscribers import PgSubscribers
from bridge.store._rows import (
    SUBSCRIBER_COLUMNS,
    inbox_status,
    leased_deliveries,
    new_in_order,
    plan_deliveries,
    stored_body,
    subscriber_from_row,
)
from bridge.store.base import (
    ClaimedDeferred,
    Delivery,
    InboxRecord,
    IngestResult,
    Store,
    Subscriber,
)

__all__ = ["PostgresStore"]

_LOCK_KEYS = (
    "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(p, 0) AS k"
    " FROM unnest($1::text[]) AS p ORDER BY k) AS s"
)
# One round trip: first the transaction advisory locks on the events' ids, in one fixed
# (sorted) order (the scalar sub-query is an InitPlan, run before the first row is inserted),
# then the rows in their given order. Two transactions inserting overlapping facts in different
# orders thus queue on the first shared lock instead of deadlocking on the unique index.
_INSERT_EVENTS = (
    "WITH locked AS (SELECT count(pg_advisory_xact_lock(k)) AS n FROM"
    " (SELECT DISTINCT hashtextextended('ev:' || x, 0) AS k FROM unnest($1::text[]) AS x"
    " ORDER BY k) AS keys)"
    " INSERT INTO events (id, dedupe_key, type, source, source_event_id, created, stored_at,"
    " body, object_of) SELECT i, k, t, s, se, c, $7, b, ob FROM unnest($1::text[], $2::text[],"
    " $3::text[], $4::text[], $5::text[], $6::bigint[], $8::bytea[], $9::text[])"
    " WITH ORDINALITY AS u(i, k, t, s, se, c, b, ob, o) WHERE (SELECT n FROM locked) >= 0"
    " ORDER BY o ON CONFLICT DO NOTHING RETURNING id"
)
_INSERT_DELIVERIES = (
    "INSERT INTO deliveries (event_id, subscriber_id, status, attempts, next_attempt_at,"
    " lease_owner, lease_until, created_at, updated_at)"
    " SELECT e, s, 'pending', a, $3, CASE WHEN l THEN $4 END,"
    " CASE WHEN l THEN $5::float8 END, $3, $3"
    " FROM unnest($1::text[], $2::text[], $6::bool[], $7::int[]) AS t(e, s, l, a)"
    " RETURNING id, event_id, subscriber_id"
)
# Requests whose events nobody subscribes to and that touch no PaymentIntent decision (the usual
# Stripe event: most types have no subscriber) need no transaction of their own: a statement is
# atomic, so each is kept whole or not at all. Those arriving together are stored by one
# statement (:class:`bridge.store._pg_batch.Gathered`): the inbox rows in key order (two
# instances inserting overlapping provider events never wait on each other in a cycle; a
# provider event twice in the batch is won by its first occurrence), then the events of the
# requests whose inbox row is new, under the same sorted advisory locks as _INSERT_EVENTS, in
# request order (an event twice in the batch goes to its first request).
# The scalar columns of a batch travel as two JSON documents (rows as arrays), the bytes as two
# bytea arrays: asyncpg checks every element of an array parameter against collections.abc
# (a Python-level isinstance each), and 28 array elements per request cost the event loop
# more than encoding the whole batch as JSON does.
_INGEST_MANY = (
    "WITH r AS (SELECT x.v->>0 AS provider, x.v->>1 AS peid, x.v->>2 AS type,"
    " (x.v->>3)::float8 AS received_at, x.v->>4 AS status, x.v->>5 AS reason,"
    " (x.v->>6)::int AS n, p.payload, x.o"
    " FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS x(v, o)"
    " JOIN unnest($2::bytea[]) WITH ORDINALITY AS p(payload, o) ON p.o = x.o),"
    " ins AS (INSERT INTO inbox (provider, provider_event_id, type, received_at, status,"
    " ignored_reason, event_count, payload) SELECT provider, peid, type, received_at, status,"
    " reason, n, payload FROM r ORDER BY provider, peid, o ON CONFLICT DO NOTHING"
    " RETURNING provider, provider_event_id),"
    " won AS (SELECT min(r.o) AS o FROM r JOIN ins ON ins.provider = r.provider"
    " AND ins.provider_event_id = r.peid GROUP BY r.provider, r.peid),"
    " e AS (SELECT (y.v->>0)::bigint AS req, y.v->>1 AS id, y.v->>2 AS k, y.v->>3 AS t,"
    " y.v->>4 AS s, y.v->>5 AS se, (y.v->>6)::bigint AS c, (y.v->>7)::float8 AS at, b.b,"
    " y.v->>8 AS ob, y.o AS eo"
    " FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS y(v, o)"
    " JOIN unnest($4::bytea[]) WITH ORDINALITY AS b(b, o) ON b.o = y.o"
    " WHERE (y.v->>0)::bigint IN (SELECT o FROM won)),"
    " locked AS (SELECT count(pg_advisory_xact_lock(x)) AS n FROM"
    " (SELECT DISTINCT hashtextextended('ev:' || id, 0) AS x FROM e ORDER BY x) AS keys),"
    " ev AS (INSERT INTO events (id, dedupe_key, type, source, source_event_id, created,"
    " stored_at, body, object_of) SELECT id, k, t, s, se, c, at, b, ob FROM e"
    " WHERE (SELECT n FROM locked) >= 0 ORDER BY req, eo ON CONFLICT DO NOTHING RETURNING id)"
    " SELECT ARRAY(SELECT o FROM won) AS won, ARRAY(SELECT id FROM ev) AS new"
)
_Alone = tuple[InboxRecord, Normalized, float]
# The first attempt of each leased endpoint delivery, recorded in the ingest transaction so the
# dispatcher sends it without another commit.
_INSERT_FIRST_ATTEMPTS = (
    "INSERT INTO attempts (delivery_id, event_id, subscriber_id, attempt, started_at, outcome)"
    " SELECT d, e, s, 1, $4, 'pending' FROM unnest($1::bigint[], $2::text[], $3::text[])"
    " AS t(d, e, s) RETURNING id, delivery_id"
)


async def _lock(conn: Any, keys: Sequence[str]) -> None:
    """Take transaction advisory locks on ``keys`` in one fixed (sorted) order."""
    if keys:
        await conn.execute(_LOCK_KEYS, list(keys))


def _inbox_params(record: InboxRecord, n: Normalized) -> list[Any]:
    """The inbox row's columns, in the order of the ingest statements."""
    return [
        record.provider,
        record.provider_event_id,
        record.type,
        record.received_at,
        inbox_status(n),
        n.ignored_reason,
        len(n.events),
        record.payload,
    ]


def _event_params(events: Sequence[Event], now: float, record: InboxRecord | None) -> list[Any]:
    """Parameters $1 to $9 of :data:`_INSERT_EVENTS` (bodies as :func:`stored_body` keeps
    them)."""
    stored = [stored_body(e, record) for e in events]  # see bridge.store._rows
    return [
        [e.id for e in events],
        [e.dedupe_key for e in events],
        [e.type for e in events],
        [e.source for e in events],
        [e.source_event_id for e in events],
        [e.created for e in events],
        now,
        [body for body, _ in stored],
        [of for _, of in stored],
    ]


def _events_blob(events: Sequence[Event]) -> bytes:
    return orjson.dumps([e.model_dump(mode="json") for e in events])


def _events_from_blob(blob: bytes) -> list[Event]:
    return [Event.model_validate(e) for e in orjson.loads(blob)]


class PostgresStore(PgSubscribers, PgDeliveries, Store):
    """See the module docstring. ``url`` is a ``postgresql://`` DSN."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        subscriber_cache_s: float = 1.0,
        command_timeout_s: float | None = 30.0,
    ) -> None:
        self._db = PgPool(
            url, min_size=min_size, max_size=max_size, command_timeout_s=command_timeout_s
        )
        self._delivered = DeliveredOutcomes(self._db, self._forget_subscribers)
        # Two statements in flight: measured +8-24 % ingests/s over one (interleaved runs), no
        # further gain from four.
        self._alone_ingests: Gathered[_Alone, IngestResult] = Gathered(
            self._write_alone, parallel=2
        )
        self._cache_s = subscriber_cache_s
        self._subs_cache: list[Subscriber] | None = None
        self._subs_loaded_at = 0.0

    async def open(self) -> None:
        """Connect and apply pending migrations; raises :class:`StoreError`."""
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    def _forget_subscribers(self) -> None:
        self._subs_cache = None

    def _fresh_subscribers(self) -> list[Subscriber] | None:
        """The cached subscribers while they are fresh, else None."""
        if time.monotonic() - self._subs_loaded_at < self._cache_s:
            return self._subs_cache
        return None

    async def _cached_subscribers(self, conn: Any) -> list[Subscriber]:
        subs = self._fresh_subscribers()
        if subs is None:
            rows = await conn.fetch(f"SELECT {SUBSCRIBER_COLUMNS} FROM subscribers")
            subs = self._subs_cache = [subscriber_from_row(r) for r in rows]
            self._subs_loaded_at = time.monotonic()
        return subs

    # -- transaction bodies -------------------------------------------------------------------
    async def _insert_events(
        self,
        conn: Any,
        events: Sequence[Event],
        now: float,
        owner: str,
        lease_until: float,
        local: set[str],
        record: InboxRecord | None,
    ) -> tuple[list[Event], list[Delivery]]:
        if not events:
            return [], []
        # One statement for all events (see _INSERT_EVENTS for why it cannot deadlock).
        rows = await conn.fetch(_INSERT_EVENTS, *_event_params(events, now, record))
        new = new_in_order(events, {r["id"] for r in rows})
        subs = await self._cached_subscribers(conn) if new else []
        plan = plan_deliveries(new, subs, local)
        if not plan:
            return new, []
        rows = await conn.fetch(
            _INSERT_DELIVERIES,
            [p.event.id for p in plan],
            [p.subscriber_id for p in plan],
            now,
            owner,
            lease_until,
            [p.leased for p in plan],
            [int(p.first_attempt) for p in plan],
        )
        ids = {(r["event_id"], r["subscriber_id"]): int(r["id"]) for r in rows}
        firsts = [p for p in plan if p.first_attempt]
        attempt_ids: dict[int, int] = {}
        if firsts:
            arows = await conn.fetch(
                _INSERT_FIRST_ATTEMPTS,
                [ids[(p.event.id, p.subscriber_id)] for p in firsts],
                [p.event.id for p in firsts],
                [p.subscriber_id for p in firsts],
                now,
            )
            attempt_ids = {int(r["delivery_id"]): int(r["id"]) for r in arows}
        return new, leased_deliveries(plan, ids, attempt_ids, now)

    async def _apply_deferred(
        self, conn: Any, deferred: Sequence[Deferred], now: float, window_s: float
    ) -> tuple[list[Event], int, int]:
        emit: list[Event] = []
        held = dropped = 0
        for d in deferred:
            pi = d.payment_intent
            if await conn.fetchval("SELECT 1 FROM pi_links WHERE payment_intent = $1", pi):
                dropped += 1
            elif window_s <= 0 or await conn.fetchval(
                "SELECT 1 FROM pi_standalone WHERE payment_intent = $1", pi
            ):
                emit.extend(d.events)
            else:
                await conn.execute(
                    "INSERT INTO deferred (payment_intent, livemode, decide_at, events,"
                    " created_at) VALUES ($1, $2, $3, $4, $5)",
                    pi,
                    bool(d.livemode),
                    now + window_s,
                    _events_blob(d.events),
                    now,
                )
                held += 1
        return emit, held, dropped

    async def _apply_links(self, conn: Any, n: Normalized) -> tuple[list[Event], int]:
        """Store links (dropping held decisions they answer) and standalone PIs (releasing
        held decisions at once). The caller holds the PI locks."""
        dropped = 0
        for link in n.links:
            await conn.execute(
                "INSERT INTO pi_links (payment_intent, invoice) VALUES ($1, $2)"
                " ON CONFLICT DO NOTHING",
                link.payment_intent,
                link.invoice,
            )
            gone = await conn.fetch(
                "DELETE FROM deferred WHERE payment_intent = $1 RETURNING id", link.payment_intent
            )
            dropped += len(gone)
        released: list[Event] = []
        for pi in n.standalone_payment_intents:
            await conn.execute(
                "INSERT INTO pi_standalone (payment_intent) VALUES ($1) ON CONFLICT DO NOTHING", pi
            )
            if await conn.fetchval("SELECT 1 FROM pi_links WHERE payment_intent = $1", pi):
                continue
            for r in await conn.fetch(
                "DELETE FROM deferred WHERE payment_intent = $1 RETURNING events", pi
            ):
                released.extend(_events_from_blob(r["events"]))
        return released, dropped

    async def _ingest_tx(
        self,
        conn: Any,
        record: InboxRecord,
        n: Normalized,
        now: float,
        window_s: float,
        owner: str,
        lease_s: float,
        local: set[str],
    ) -> IngestResult:
        first = await conn.fetchval(
            "INSERT INTO inbox (provider, provider_event_id, type, received_at, status,"
            " ignored_reason, event_count, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            *_inbox_params(record, n),
        )
        if first is None:
            return IngestResult(duplicate=True)
        pis = [
            *(link.payment_intent for link in n.links),
            *n.standalone_payment_intents,
            *(d.payment_intent for d in n.deferred),
        ]
        await _lock(conn, ["pi:" + pi for pi in pis])
        released, dropped = await self._apply_links(conn, n)
        emit, held, dropped_now = await self._apply_deferred(conn, n.deferred, now, window_s)
        events, deliveries = await self._insert_events(
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
        """See :meth:`Store.ingest`; raises :class:`StoreError` (nothing is then kept)."""
        local = set(local_handlers)
        if await self._alone(normalized, local):
            return await self._alone_ingests.submit((record, normalized, now))
        async with self._db.tx() as conn:
            return await self._ingest_tx(
                conn,
                record,
                normalized,
                now,
                correlation_window_s,
                owner,
                lease_s,
                local,
            )

    async def _alone(self, n: Normalized, local: set[str]) -> bool:
        """Whether ``n`` can be stored by :data:`_INGEST_MANY`: no PaymentIntent links,
        standalone marks or held decisions, and no subscriber (endpoint, or a handler here or
        elsewhere) wants any of its events."""
        if n.links or n.standalone_payment_intents or n.deferred:
            return False
        if not n.events:
            return True
        subs = self._fresh_subscribers()
        if subs is None:
            async with self._db.conn() as conn:
                subs = await self._cached_subscribers(conn)
        return not plan_deliveries(n.events, subs, local)

    async def _write_alone(self, items: list[_Alone]) -> list[IngestResult | BaseException]:
        """Store requests that need no transaction (:meth:`_alone`): one statement for all.
        When it fails, each is tried on its own, so a request that cannot be stored fails
        alone."""
        try:
            return await self._ingest_many(items)
        except StoreError as exc:
            if len(items) == 1:
                return [exc]
        out: list[IngestResult | BaseException] = []
        for item in items:
            try:
                out += await self._ingest_many([item])
            except StoreError as exc:
                out.append(exc)
        return out

    async def _ingest_many(self, items: list[_Alone]) -> list[IngestResult | BaseException]:
        inbox: list[list[Any]] = []
        events: list[list[Any]] = []
        bodies: list[bytes] = []
        for o, (record, n, now) in enumerate(items, 1):
            inbox.append(_inbox_params(record, n)[:7])  # the payload goes apart, as bytes
            for e in n.events:
                body, of = stored_body(e, record)  # see bridge.store._rows
                events.append(
                    [o, e.id, e.dedupe_key, e.type, e.source, e.source_event_id, e.created, now, of]
                )
                bodies.append(body)
        async with self._db.conn() as conn:
            row = await conn.fetchrow(
                _INGEST_MANY,
                orjson.dumps(inbox).decode(),
                [record.payload for record, _, _ in items],
                orjson.dumps(events).decode(),
                bodies,
            )
        won, new = set(row["won"]), set(row["new"])
        out: list[IngestResult | BaseException] = []
        for o, (_, n, _) in enumerate(items, 1):
            if o not in won:
                out.append(IngestResult(duplicate=True))
                continue
            mine = new_in_order(n.events, new)
            new.difference_update(e.id for e in mine)  # an event twice: its first request's
            out.append(IngestResult(False, mine, []))
        return out

    async def claim_pending_fetches(
        self, *, now: float, owner: str, lease_s: float, limit: int
    ) -> list[InboxRecord]:
        """See :meth:`Store.claim_pending_fetches`; raises :class:`StoreError`."""
        async with self._db.tx(durable=False) as conn:
            rows = await conn.fetch(
                "UPDATE inbox SET lease_owner = $1, lease_until = $2"
                " WHERE (provider, provider_event_id) IN ("
                " SELECT provider, provider_event_id FROM inbox WHERE status = 'pending_fetch'"
                " AND (lease_until IS NULL OR lease_until < $3)"
                " ORDER BY received_at LIMIT $4 FOR UPDATE SKIP LOCKED)"
                " RETURNING provider, provider_event_id, type, received_at, payload",
                owner,
                now + lease_s,
                now,
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
        *,
        now: float,
        correlation_window_s: float,
        owner: str,
        lease_s: float,
        local_handlers: Sequence[str],
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
            return await self._ingest_tx(
                conn,
                fetched,
                normalized,
                now,
                correlation_window_s,
                owner,
                lease_s,
                set(local_handlers),
            )

    async def claim_due_deferred(
        self, *, now: float, owner: str, lease_s: float, limit: int
    ) -> list[ClaimedDeferred]:
        """See :meth:`Store.claim_due_deferred`; raises :class:`StoreError`."""
        async with self._db.tx(durable=False) as conn:
            rows = await conn.fetch(
                "UPDATE deferred SET lease_owner = $1, lease_until = $2 WHERE id IN ("
                " SELECT id FROM deferred WHERE decide_at <= $3"
                " AND (lease_until IS NULL OR lease_until < $3)"
                " ORDER BY decide_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)"
                " RETURNING id, payment_intent, livemode, events, decide_at",
                owner,
                now + lease_s,
                now,
                limit,
            )
        rows = sorted(rows, key=lambda r: (r["decide_at"], r["id"]))
        return [
            ClaimedDeferred(
                int(r["id"]),
                r["payment_intent"],
                bool(r["livemode"]),
                _events_from_blob(r["events"]),
            )
            for r in rows
        ]

    async def _resolve_tx(
        self,
        conn: Any,
        deferred_id: int,
        emit: bool,
        now: float,
        owner: str,
        lease_until: float,
        local: set[str],
        invoice: str | None,
    ) -> IngestResult:
        pi = await conn.fetchval("SELECT payment_intent FROM deferred WHERE id = $1", deferred_id)
        if pi is None:  # already decided (a link arrived, or another claim won)
            return IngestResult(duplicate=True)
        await _lock(conn, ["pi:" + pi])
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
        new, deliveries = await self._insert_events(
            conn, _events_from_blob(blob), now, owner, lease_until, local, None
        )
        return IngestResult(False, new, deliveries)

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
        """See :meth:`Store.resolve_deferred`; raises :class:`StoreError`."""
        async with self._db.tx() as conn:
            return await self._resolve_tx(
                conn, deferred_id, emit, now, owner, now + lease_s, set(local_handlers), invoice
            )
