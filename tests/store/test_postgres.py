"""PostgreSQL only: several instances on one database (races), migrations at start, errors
and reconnection. "Instances" are separate PostgresStore objects, each with its own pool."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from bridge.errors import StoreError
from bridge.store import create_store
from bridge.store.base import Delivery, IngestResult
from bridge.store.postgres import PostgresStore
from bridge.store.postgres.schema import MIGRATIONS
from tests.store.store_factories import (
    LEASE_S,
    NOW,
    WINDOW_S,
    FreshDatabase,
    OpenStore,
    endpoint,
    event,
    ingest,
    invoice_paid,
    link,
    normalized,
    pay_key,
    pi_decision,
)

pytestmark = pytest.mark.postgres


async def test_postgres_concurrent_ingest_of_one_provider_event_has_one_winner(
    pg_store: PostgresStore, open_pg_store: OpenStore
) -> None:
    other = await open_pg_store()
    await pg_store.put_subscriber(endpoint("we_1"))
    results: list[IngestResult] = []
    for i in range(20):
        n = normalized(event(f"cs_{i}"))
        results += await asyncio.gather(
            ingest(pg_store, f"evt_{i}", n, owner="a"), ingest(other, f"evt_{i}", n, owner="b")
        )

    winners = [r for r in results if not r.duplicate]
    assert len(winners) == 20
    assert all(len(r.events) == 1 and len(r.deliveries) == 1 for r in winners)
    counts = await pg_store.counts()
    assert (counts["inbox"], counts["events"], counts["pending"]) == (20, 20, 20)


async def test_postgres_concurrent_ingest_of_one_fact_stores_one_event(
    pg_store: PostgresStore, open_pg_store: OpenStore
) -> None:
    other = await open_pg_store()
    await pg_store.put_subscriber(endpoint("we_1"))
    new_events = 0
    for i in range(20):
        # two provider events naming the same facts, listed in opposite orders
        a, b = event(f"in_{i}", "invoice.paid"), event(f"cs_{i}")
        pair = await asyncio.gather(
            ingest(pg_store, f"evt_a{i}", normalized(a, b)),
            ingest(other, f"evt_b{i}", normalized(b, a)),
        )
        assert not any(r.duplicate for r in pair)
        new_events += sum(len(r.events) for r in pair)

    assert new_events == 40
    counts = await pg_store.counts()
    assert (counts["inbox"], counts["events"], counts["pending"]) == (40, 40, 40)


async def test_postgres_link_and_held_decision_racing_never_both_miss(
    pg_store: PostgresStore, open_pg_store: OpenStore
) -> None:
    other = await open_pg_store()
    for i in range(30):
        pi = f"pi_{i}"
        held, linked = await asyncio.gather(
            ingest(pg_store, f"evt_pi{i}", pi_decision(pi)),
            ingest(other, f"evt_link{i}", link(pi)),
        )
        assert held.dropped + linked.dropped == 1  # one side always saw the other

    assert (await pg_store.counts())["held"] == 0
    late = NOW + WINDOW_S + 1
    assert await pg_store.claim_holds(now=late, owner="a", lease_s=LEASE_S, limit=100) == []


async def test_postgres_concurrent_claims_are_disjoint_and_complete(
    pg_store: PostgresStore, open_pg_store: OpenStore
) -> None:
    others = [await open_pg_store(max_size=4) for _ in range(2)]
    await pg_store.put_subscriber(endpoint("we_1"))
    await pg_store.put_subscriber(endpoint("we_2"))
    for i in range(150):  # 300 deliveries, leased by nobody
        await ingest(pg_store, f"evt_{i}", normalized(event(f"cs_{i}")), owner="gone")

    async def drain(store: PostgresStore, owner: str) -> list[Delivery]:
        got: list[Delivery] = []
        while batch := await store.claim_due(
            now=NOW + LEASE_S + 1, owner=owner, lease_s=LEASE_S, limit=7, handlers=()
        ):
            got += batch
        return got

    workers = [(s, f"instance-{n}-worker-{i}") for n, s in enumerate(others) for i in range(2)]
    claims = await asyncio.gather(*(drain(s, owner) for s, owner in workers))
    ids = [d.id for batch in claims for d in batch]

    assert len(ids) == 300 and len(set(ids)) == 300


async def test_postgres_concurrent_hold_claims_and_resolves_emit_once(
    pg_store: PostgresStore, open_pg_store: OpenStore
) -> None:
    other = await open_pg_store()
    for i in range(40):
        await ingest(pg_store, f"evt_pi{i}", pi_decision(f"pi_{i}"))
    due = NOW + WINDOW_S

    async def decide(store: PostgresStore, owner: str) -> tuple[set[int], int]:
        claimed: set[int] = set()
        emitted = 0
        while batch := await store.claim_holds(now=due, owner=owner, lease_s=60, limit=3):
            for c in batch:
                claimed.add(c.id)
                res = await store.resolve_hold(
                    c.id, answer=None, now=due, owner=owner, lease_s=LEASE_S, local_handlers=()
                )
                emitted += len(res.events)
        return claimed, emitted

    (mine, n_mine), (theirs, n_theirs) = await asyncio.gather(
        decide(pg_store, "a"), decide(other, "b")
    )

    assert not mine & theirs and len(mine | theirs) == 40
    assert n_mine + n_theirs == 40
    counts = await pg_store.counts()
    assert (counts["held"], counts["events"]) == (0, 40)


async def test_postgres_two_instances_matching_one_invoice_payment_use_it_once(
    pg_store: PostgresStore, open_pg_store: OpenStore
) -> None:
    other = await open_pg_store()
    for i in range(15):  # each round: one invoice payment, two PIs of the same key
        key = pay_key(1000 + i)
        await ingest(pg_store, f"evt_in{i}", invoice_paid(f"in_{i}", key))
        await ingest(pg_store, f"evt_a{i}", pi_decision(f"pi_a{i}", key=key))
        await ingest(pg_store, f"evt_b{i}", pi_decision(f"pi_b{i}", key=key))
    due = NOW + WINDOW_S

    async def decide(store: PostgresStore, owner: str) -> list[IngestResult]:
        out: list[IngestResult] = []
        while batch := await store.claim_holds(now=due, owner=owner, lease_s=60, limit=1):
            for h in batch:
                out.append(
                    await store.resolve_hold(
                        h.id, answer=None, now=due, owner=owner, lease_s=LEASE_S,
                        local_handlers=(),
                    )
                )  # fmt: skip
        return out

    mine, theirs = await asyncio.gather(decide(pg_store, "a"), decide(other, "b"))

    verdicts = [r.verdict for r in mine + theirs if r.verdict is not None]
    assert len(verdicts) == 30
    assert sorted(v.basis for v in verdicts) == ["match"] * 15 + ["no_match"] * 15
    claimed = {v.claim for v in verdicts if v.claim}
    assert len(claimed) == 15  # every invoice payment accounts for exactly one PI


async def test_postgres_concurrent_migrations_on_a_fresh_database(
    fresh_database: FreshDatabase,
) -> None:
    url = await fresh_database()
    stores = [PostgresStore(url) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        conn = await asyncpg.connect(url)
        try:
            versions = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
        finally:
            await conn.close()
        assert [r["version"] for r in versions] == [v for v, _ in MIGRATIONS]
        assert (await stores[3].counts())["events"] == 0
    finally:
        await asyncio.gather(*(s.close() for s in stores))


async def _terminate(url: str, where: str) -> int:
    admin = await asyncpg.connect(url)
    try:
        killed: int = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            f" WHERE datname = current_database() AND pid <> pg_backend_pid() AND {where}"
        )
    finally:
        await admin.close()
    return killed


async def test_postgres_recovers_after_idle_backends_are_terminated(
    pg_store: PostgresStore, postgres_url: str
) -> None:
    await pg_store.put_subscriber(endpoint("we_1"))
    assert await _terminate(postgres_url, "backend_type = 'client backend'") >= 1

    failures = 0
    for attempt in range(5):
        try:
            res = await ingest(pg_store, f"evt_{attempt}", normalized(event(f"cs_{attempt}")))
        except StoreError:
            failures += 1
            continue
        break
    assert failures <= 1  # at most the call that met the dead connection
    assert [d.subscriber_id for d in res.deliveries] == ["we_1"]
    assert (await pg_store.counts())["events"] == 1


async def _until_waiting(conn: asyncpg.Connection, where: str) -> bool:
    """Poll (bounded) until a backend of this database matches ``where``."""
    sql = (
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        f" AND pid <> pg_backend_pid() AND {where}"
    )
    for _ in range(1000):
        if await conn.fetchval(sql):
            return True
        await asyncio.sleep(0.01)
    return False


async def test_postgres_backend_killed_mid_ingest_raises_store_error_and_keeps_nothing(
    pg_store: PostgresStore, postgres_url: str
) -> None:
    blocker = await asyncpg.connect(postgres_url)
    try:
        # hold the PI lock so the ingest stops half-way through its transaction
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT pg_advisory_xact_lock(hashtextextended('pi:pi_1', 0))")
        task = asyncio.create_task(ingest(pg_store, "evt_link", link("pi_1")))
        waiting = "wait_event_type = 'Lock' AND backend_type = 'client backend'"
        assert await _until_waiting(blocker, waiting)
        assert await _terminate(postgres_url, waiting) == 1
        with pytest.raises(StoreError):
            await task
        await tx.rollback()
    finally:
        await blocker.close()

    again = await ingest(pg_store, "evt_link", link("pi_1"))

    assert not again.duplicate  # the killed transaction kept nothing
    assert (await pg_store.counts())["inbox"] == 1


async def test_postgres_backend_killed_mid_write_outside_ingest_raises_store_error(
    pg_store: PostgresStore, postgres_url: str
) -> None:
    await pg_store.put_subscriber(endpoint("we_1"))
    blocker = await asyncpg.connect(postgres_url)
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT 1 FROM subscribers WHERE id = 'we_1' FOR UPDATE")
        task = asyncio.create_task(pg_store.put_subscriber(endpoint("we_1", ["invoice.paid"])))
        waiting = "wait_event_type = 'Lock' AND backend_type = 'client backend'"
        assert await _until_waiting(blocker, waiting)
        assert await _terminate(postgres_url, waiting) == 1
        with pytest.raises(StoreError):
            await task
        await tx.rollback()
    finally:
        await blocker.close()

    sub = await pg_store.get_subscriber("we_1")
    assert sub is not None and sub.enabled_events == ["*"]


async def test_postgres_unreachable_database_raises_store_error() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/nowhere")

    with pytest.raises(StoreError):
        await store.open()
    with pytest.raises(StoreError):
        await store.counts()


async def test_postgres_closed_store_raises_store_error(open_pg_store: OpenStore) -> None:
    store = await open_pg_store()
    await store.open()  # already open: nothing happens
    await store.close()
    await store.close()  # idempotent

    with pytest.raises(StoreError):
        await store.get_event("evt_x")


async def test_postgres_other_instance_sees_subscriber_changes(
    pg_store: PostgresStore, open_pg_store: OpenStore
) -> None:
    other = await open_pg_store()
    assert (await ingest(other, "evt_0", normalized(event("cs_0")))).deliveries == []

    await pg_store.put_subscriber(endpoint("we_1"))
    res = await ingest(other, "evt_1", normalized(event("cs_1")))

    assert [d.subscriber_id for d in res.deliveries] == ["we_1"]
    assert await other.get_subscriber("we_1") == endpoint("we_1")


def test_postgres_create_store_picks_postgres_for_postgresql_urls() -> None:
    assert isinstance(create_store("postgresql://u@127.0.0.1/db"), PostgresStore)
    assert isinstance(create_store("postgres://u@127.0.0.1/db"), PostgresStore)


async def test_postgres_bookkeeping_commits_do_not_wait_for_the_wal_flush(
    pg_store: PostgresStore,
) -> None:
    """Ingest and admin changes commit durably; outcomes, leases and claims run on the
    bookkeeping pool (synchronous_commit = off): see bridge.store.postgres.pool."""
    db = pg_store._db
    async with db.tx() as conn:
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
    async with db.tx(durable=False) as conn:
        assert await conn.fetchval("SHOW synchronous_commit") == "off"
    async with db.conn(durable=False) as conn:
        assert await conn.fetchval("SHOW synchronous_commit") == "off"
    await pg_store.close()
    with pytest.raises(StoreError, match="not open"):
        async with db.conn(durable=False):
            pass


async def test_postgres_delivered_outcomes_written_together(
    pg_store: PostgresStore, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outcomes of delivered attempts that arrive while a statement runs share the next one:
    every row is written, a failure streak is cleared, and a failing statement fails every
    waiter with StoreError."""
    from bridge.store.base import DeliveryOutcome

    await pg_store.put_subscriber(endpoint("we_1"))
    await pg_store.put_subscriber(endpoint("we_2"))
    deliveries: list[Delivery] = []
    for i in range(30):
        deliveries += (await ingest(pg_store, f"evt_{i}", normalized(event(f"cs_{i}")))).deliveries
    assert len(deliveries) == 60 and all(d.attempt_id is not None for d in deliveries)
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute("UPDATE subscribers SET failing_since = $1 WHERE id = 'we_2'", NOW)
    finally:
        await conn.close()
    statements = 0
    real_execute = asyncpg.connection.Connection.execute

    async def counting(self: asyncpg.Connection, query: str, *args: object) -> str:
        nonlocal statements
        statements += "unnest($1::bigint[], $2::bigint[]" in query
        return str(await real_execute(self, query, *args))

    monkeypatch.setattr(asyncpg.connection.Connection, "execute", counting)
    ok = DeliveryOutcome(delivered=True, status_code=200, response_body="ok", duration_ms=3.0)
    await asyncio.gather(
        *(
            pg_store.finish_attempt(
                d.attempt_id or 0, d.id, ok, now=NOW + 1, disable_after_failing_s=3600
            )
            for d in deliveries[:50]
        )
    )
    assert 1 <= statements < 50  # together, not one round trip each
    page = await pg_store.list_attempts(limit=100)
    done = {a.delivery_id: a for a in page.items if a.status == "succeeded"}
    assert set(done) == {d.id for d in deliveries[:50]}
    assert {(a.status_code, a.response_body) for a in done.values()} == {(200, "ok")}
    assert (await pg_store.counts())["pending"] == 10
    sub = await pg_store.get_subscriber("we_2")
    assert sub is not None and sub.failing_since is None

    async def broken(self: asyncpg.Connection, query: str, *args: object) -> str:
        raise asyncpg.PostgresConnectionError("connection lost")

    monkeypatch.setattr(asyncpg.connection.Connection, "execute", broken)
    rest = await asyncio.gather(
        *(
            pg_store.finish_attempt(
                d.attempt_id or 0, d.id, ok, now=NOW + 2, disable_after_failing_s=3600
            )
            for d in deliveries[50:]
        ),
        return_exceptions=True,
    )
    assert all(isinstance(r, StoreError) for r in rest)


async def test_postgres_unsubscribed_requests_stored_together(
    pg_store: PostgresStore, open_pg_store: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests nobody subscribes to are stored many per statement: a provider event twice in
    one batch is won by its first request, a fact twice goes to its first request, events
    keep their order, and a request the database refuses fails alone."""
    batches: list[int] = []
    part: Any = pg_store._ingest
    many = part._ingest_many

    async def counted(items: list[Any]) -> list[Any]:
        out: list[Any] = await many(items)
        batches.append(len(items))
        return out

    monkeypatch.setattr(part, "_ingest_many", counted)
    await ingest(pg_store, "evt_warm", normalized(event("w_0")))  # loads the subscriber cache
    a, b, a_again, c, d = await asyncio.gather(
        ingest(pg_store, "evt_a", normalized(event("cs_1"), event("in_1", "invoice.paid"))),
        ingest(pg_store, "evt_b", normalized(event("cs_2"))),
        ingest(pg_store, "evt_a", normalized(event("cs_9"))),  # the same provider event again
        ingest(pg_store, "evt_c", normalized(event("cs_2"), event("cs_3"))),  # cs_2 again
        ingest(pg_store, "evt_d", normalized()),  # means nothing
    )
    assert batches == [1, 5]  # the warm-up alone, then one statement for the five
    (bad, fine) = await asyncio.gather(
        ingest(pg_store, "evt\x00bad", normalized(event("cs_4"))),  # PostgreSQL refuses NUL
        ingest(pg_store, "evt_e", normalized(event("cs_5"))),
        return_exceptions=True,
    )
    assert isinstance(fine, IngestResult) and [e.object_id for e in fine.events] == ["cs_5"]
    assert isinstance(a, IngestResult) and [e.object_id for e in a.events] == ["cs_1", "in_1"]
    assert isinstance(b, IngestResult) and [e.object_id for e in b.events] == ["cs_2"]
    assert isinstance(a_again, IngestResult) and a_again.duplicate and a_again.events == []
    assert isinstance(c, IngestResult) and [e.object_id for e in c.events] == ["cs_3"]
    assert isinstance(d, IngestResult) and not d.duplicate and d.events == []
    assert isinstance(bad, StoreError)
    counts = await pg_store.counts()
    assert (counts["inbox"], counts["events"]) == (6, 6)
    listed = await pg_store.list_events(limit=None)
    assert [e.object_id for e in reversed(listed.items)] == [
        "w_0",
        "cs_1",
        "in_1",
        "cs_2",
        "cs_3",
        "cs_5",
    ]
    # two instances storing overlapping requests at once: one winner per provider event
    other = await open_pg_store()
    results = await asyncio.gather(
        *(
            ingest(s, f"evt_x{i}", normalized(event(f"x_{i}")))
            for i in range(20)
            for s in (pg_store, other)
        )
    )
    assert sum(not r.duplicate for r in results) == 20
    assert sum(len(r.events) for r in results) == 20
