"""PostgreSQL store, ingest: the inbox row, the canonical events that are new facts, their
deliveries and the first attempts of the leased endpoint deliveries, in one transaction; or,
for requests nobody subscribes to, in one statement shared by the requests arriving together
(see :data:`_INGEST_MANY`). Why it is safe with several instances: :mod:`.store`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from bridge.errors import StoreError
from bridge.events import Event, event_refs
from bridge.holds import payment_intents, plan_ingest
from bridge.normalized import Normalized
from bridge.store.base import Delivery, InboxRecord, IngestResult
from bridge.store.bodies import stored_body
from bridge.store.parts import Writing
from bridge.store.planning import inbox_status, leased_deliveries, new_in_order, plan_deliveries
from bridge.store.postgres.batch import BatchedWrites
from bridge.store.postgres.links import lock, read_known, write_plan
from bridge.store.postgres.pool import PgPool
from bridge.store.postgres.subscribers import SubscriberCache

__all__ = ["PgIngest"]

# One round trip: first the transaction advisory locks on the events' ids, in one fixed
# (sorted) order (the scalar sub-query is an InitPlan, run before the first row is inserted),
# then the rows in their given order. Two transactions inserting overlapping facts in different
# orders thus queue on the first shared lock instead of deadlocking on the unique index.
_INSERT_EVENTS = (
    "WITH locked AS (SELECT count(pg_advisory_xact_lock(k)) AS n FROM"
    " (SELECT DISTINCT hashtextextended('ev:' || x, 0) AS k FROM unnest($1::text[]) AS x"
    " ORDER BY k) AS keys)"
    " INSERT INTO events (id, dedupe_key, type, source, source_event_id, created, stored_at,"
    " body, object_of, customer, subscription, invoice)"
    " SELECT i, k, t, s, se, c, $7, b, ob, cu, su, iv FROM unnest($1::text[], $2::text[],"
    " $3::text[], $4::text[], $5::text[], $6::bigint[], $8::bytea[], $9::text[], $10::text[],"
    " $11::text[], $12::text[])"
    " WITH ORDINALITY AS u(i, k, t, s, se, c, b, ob, cu, su, iv, o)"
    " WHERE (SELECT n FROM locked) >= 0"
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
# statement (:class:`bridge.store.postgres.batch.BatchedWrites`): the inbox rows in key order (two
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
    " y.v->>8 AS ob, y.v->>9 AS cu, y.v->>10 AS su, y.v->>11 AS iv, y.o AS eo"
    " FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS y(v, o)"
    " JOIN unnest($4::bytea[]) WITH ORDINALITY AS b(b, o) ON b.o = y.o"
    " WHERE (y.v->>0)::bigint IN (SELECT o FROM won)),"
    " locked AS (SELECT count(pg_advisory_xact_lock(x)) AS n FROM"
    " (SELECT DISTINCT hashtextextended('ev:' || id, 0) AS x FROM e ORDER BY x) AS keys),"
    " ev AS (INSERT INTO events (id, dedupe_key, type, source, source_event_id, created,"
    " stored_at, body, object_of, customer, subscription, invoice)"
    " SELECT id, k, t, s, se, c, at, b, ob, cu, su, iv FROM e"
    " WHERE (SELECT n FROM locked) >= 0 ORDER BY req, eo ON CONFLICT DO NOTHING RETURNING id)"
    " SELECT ARRAY(SELECT o FROM won) AS won, ARRAY(SELECT id FROM ev) AS new"
)
# A request the shared statement stores (no transaction of its own): record, normalized, now.
_StatementOnly = tuple[InboxRecord, Normalized, float]
# The first attempt of each leased endpoint delivery, recorded in the ingest transaction so the
# dispatcher sends it without another commit.
_INSERT_FIRST_ATTEMPTS = (
    "INSERT INTO attempts (delivery_id, event_id, subscriber_id, attempt, started_at, outcome)"
    " SELECT d, e, s, 1, $4, 'pending' FROM unnest($1::bigint[], $2::text[], $3::text[])"
    " AS t(d, e, s) RETURNING id, delivery_id"
)


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
    """Parameters $1 to $12 of :data:`_INSERT_EVENTS` (bodies as :func:`stored_body` keeps
    them)."""
    stored = [stored_body(e, record) for e in events]  # see bridge.store.bodies
    refs = [event_refs(e) for e in events]
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
        [r.customer for r in refs],
        [r.subscription for r in refs],
        [r.invoice for r in refs],
    ]


class PgIngest:
    """The ingest part of the PostgreSQL store; :meth:`tx` and :meth:`insert_events` are the
    transaction bodies the correlation part reuses."""

    def __init__(self, db: PgPool, cache: SubscriberCache) -> None:
        self._db = db
        self._cache = cache
        # Two statements in flight (bench/PERFORMANCE.md, "Measurements behind the code").
        self._statement_ingests: BatchedWrites[_StatementOnly, IngestResult] = BatchedWrites(
            self._write_statement_only, parallel=2
        )

    async def ingest(self, record: InboxRecord, normalized: Normalized, w: Writing) -> IngestResult:
        """See :meth:`Store.ingest`; raises :class:`StoreError` (nothing is then kept)."""
        if await self._statement_only(normalized, w.local):
            return await self._statement_ingests.submit((record, normalized, w.now))
        async with self._db.tx() as conn:
            return await self.tx(conn, record, normalized, w)

    async def _statement_only(self, n: Normalized, local: frozenset[str]) -> bool:
        """Whether ``n`` can be stored by :data:`_INGEST_MANY`: nothing for the PaymentIntent
        rule, and no subscriber (endpoint, or a handler here or elsewhere) wants any of its
        events."""
        if n.touches_payment_intents:
            return False
        if not n.events:
            return True
        subs = self._cache.fresh()
        if subs is None:
            async with self._db.conn() as conn:
                subs = await self._cache.get(conn)
        return not plan_deliveries(n.events, subs, local)

    async def _write_statement_only(
        self, items: list[_StatementOnly]
    ) -> list[IngestResult | BaseException]:
        """Store requests that need no transaction (:meth:`_statement_only`): one statement
        for all. When it fails, each is tried on its own, so a request that cannot be stored fails
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

    async def _ingest_many(self, items: list[_StatementOnly]) -> list[IngestResult | BaseException]:
        inbox: list[list[Any]] = []
        events: list[list[Any]] = []
        bodies: list[bytes] = []
        for o, (record, n, now) in enumerate(items, 1):
            inbox.append(_inbox_params(record, n)[:7])  # the payload goes apart, as bytes
            for e in n.events:
                body, of = stored_body(e, record)  # see bridge.store.bodies
                events.append(
                    [o, e.id, e.dedupe_key, e.type, e.source, e.source_event_id, e.created, now, of,
                     *event_refs(e)]
                )  # fmt: skip
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

    async def insert_events(
        self,
        conn: Any,
        events: Sequence[Event],
        w: Writing,
        record: InboxRecord | None,
    ) -> tuple[list[Event], list[Delivery]]:
        if not events:
            return [], []
        # One statement for all events (see _INSERT_EVENTS for why it cannot deadlock).
        rows = await conn.fetch(_INSERT_EVENTS, *_event_params(events, w.now, record))
        new = new_in_order(events, {r["id"] for r in rows})
        subs = await self._cache.get(conn) if new else []
        plan = plan_deliveries(new, subs, w.local)
        if not plan:
            return new, []
        rows = await conn.fetch(
            _INSERT_DELIVERIES,
            [p.event.id for p in plan],
            [p.subscriber_id for p in plan],
            w.now,
            w.owner,
            w.lease_until,
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
                w.now,
            )
            attempt_ids = {int(r["delivery_id"]): int(r["id"]) for r in arows}
        return new, leased_deliveries(plan, ids, attempt_ids, w.now)

    async def tx(self, conn: Any, record: InboxRecord, n: Normalized, w: Writing) -> IngestResult:
        first = await conn.fetchval(
            "INSERT INTO inbox (provider, provider_event_id, type, received_at, status,"
            " ignored_reason, event_count, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            *_inbox_params(record, n),
        )
        if first is None:
            return IngestResult(duplicate=True)
        if not n.touches_payment_intents:
            events, deliveries = await self.insert_events(conn, n.events, w, record)
            return IngestResult(False, events, deliveries)
        await lock(conn, ["pi:" + pi for pi in payment_intents(n)])
        known = await read_known(conn, n)
        plan = plan_ingest(n, known, now=w.now, window_s=w.window_s, lookups=w.lookups)
        await write_plan(conn, plan, w.now)
        events, deliveries = await self.insert_events(conn, plan.emit, w, record)
        return IngestResult(False, events, deliveries, len(plan.holds), plan.dropped)
