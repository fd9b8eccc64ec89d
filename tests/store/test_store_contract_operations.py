"""The store contract, the operator's side: listing deliveries by key, recovering what failed
for an endpoint, totals per subscriber, and named jobs with a lease. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from bridge.store.base import Delivery, DeliveryOutcome, Store
from tests.store.store_factories import (
    LEASE_S,
    NOW,
    OpenStore,
    endpoint,
    event,
    handler,
    ingest,
    normalized,
)

LATER = NOW + LEASE_S + 1
OK = DeliveryOutcome(delivered=True, status_code=200, response_body="ok", duration_ms=3.0)


def _failed(next_at: float | None, code: int = 500) -> DeliveryOutcome:
    return DeliveryOutcome(False, code, f"HTTP {code}", "no", 2.0, next_at)


async def _delivery(store: Store, key: str, sid: str = "we_1", now: float = NOW) -> Delivery:
    """Ingest one event for ``sid`` (its first attempt recorded, leased to "a")."""
    res = await ingest(store, f"evt_{key}", normalized(event(key)), now=now, owner="a")
    (d,) = [d for d in res.deliveries if d.subscriber_id == sid]
    return d


async def _finish(store: Store, d: Delivery, outcome: DeliveryOutcome, now: float) -> None:
    assert d.attempt_id is not None
    await store.finish_attempt(d.attempt_id, d.id, outcome, now=now, disable_after_failing_s=1e9)


async def _endpoints(store: Store, *sids: str) -> None:
    for sid in sids:
        await store.put_subscriber(endpoint(sid))


# -- listing ----------------------------------------------------------------------------------


async def test_list_deliveries_newest_first_by_status_and_endpoint(store: Store) -> None:
    await _endpoints(store, "we_1", "we_2")
    a = await _delivery(store, "cs_a")
    await _finish(store, a, _failed(None, 503), NOW + 1)
    b = await _delivery(store, "cs_b", "we_2")
    await _finish(store, b, OK, NOW + 2)

    everything = await store.list_deliveries()
    dead = await store.list_deliveries(status="dead")
    to_2 = await store.list_deliveries(subscriber_id="we_2")

    ids = [d.id for d in everything.items]
    assert ids == sorted(ids, reverse=True) and len(ids) == 4 and everything.next_cursor is None
    assert [(d.id, d.last_status_code, d.last_error) for d in dead.items] == [
        (a.id, 503, "HTTP 503")
    ]
    assert dead.items[0].event_type == "checkout.session.completed"
    assert dead.items[0].event_id == a.event.id and dead.items[0].attempts == 1
    assert {d.subscriber_id for d in to_2.items} == {"we_2"} and len(to_2.items) == 2
    delivered = next(d for d in to_2.items if d.id == b.id)
    assert delivered.status == "delivered" and delivered.last_status_code == 200


async def test_list_deliveries_pages_by_key(store: Store) -> None:
    await _endpoints(store, "we_1")
    for i in range(5):
        await _delivery(store, f"cs_{i}")

    seen: list[int] = []
    cursor: int | None = None
    pages = 0
    while True:
        page = await store.list_deliveries(before_id=cursor, limit=2)
        seen += [d.id for d in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3 and seen == sorted(seen, reverse=True) and len(set(seen)) == 5
    assert (await store.list_deliveries(limit=5)).next_cursor is None


# -- recovery ---------------------------------------------------------------------------------


async def _outage(store: Store) -> dict[str, Delivery]:
    """we_1 during an outage: one dead before it, one dead and one failing during it, one
    delivered, one first attempt still in flight; we_2's dead delivery is not we_1's."""
    await _endpoints(store, "we_1", "we_2")
    old = await _delivery(store, "cs_old")
    await _finish(store, old, _failed(None), NOW)
    dead = await _delivery(store, "cs_dead")
    await _finish(store, dead, _failed(None), NOW + 20)
    failing = await _delivery(store, "cs_failing")
    await _finish(store, failing, _failed(NOW + 3600), NOW + 20)
    done = await _delivery(store, "cs_done")
    await _finish(store, done, OK, NOW + 20)
    in_flight = await _delivery(store, "cs_flying", now=NOW + 20)
    await _finish(store, await _delivery(store, "cs_other", "we_2"), _failed(None), NOW + 20)
    return {"old": old, "dead": dead, "failing": failing, "done": done, "flying": in_flight}


async def test_recover_dry_run_counts_and_changes_nothing(store: Store) -> None:
    await _outage(store)
    before = await store.list_deliveries()

    counted = await store.recover("we_1", since=NOW + 10, now=NOW + 30, dry_run=True)

    assert (counted.dead, counted.failing, counted.count) == (1, 1, 2)
    assert counted.dry_run and counted.endpoint_status == "enabled" and counted.since == NOW + 10
    assert await store.list_deliveries() == before


async def test_recover_resends_dead_and_retries_failing_now(store: Store) -> None:
    d = await _outage(store)

    done = await store.recover("we_1", since=NOW + 10, now=NOW + 30)

    assert (done.dead, done.failing, done.dry_run) == (1, 1, False)
    fresh = [
        x
        for x in (await store.list_deliveries(subscriber_id="we_1")).items
        if x.event_id == d["dead"].event.id and x.status == "pending"
    ]
    assert len(fresh) == 1 and fresh[0].attempts == 0 and fresh[0].next_attempt_at == NOW + 30
    due = await store.claim_due(now=NOW + 30, owner="b", lease_s=LEASE_S, limit=10, handlers=())
    assert {x.id for x in due} == {fresh[0].id, d["failing"].id}
    again = await store.recover("we_1", since=NOW + 10, now=NOW + 31, dry_run=True)
    assert again.dead == 0  # already resent: the fresh delivery supersedes the dead one
    assert again.failing == 0  # now held by "b", which is sending it


async def test_recover_counts_nothing_before_since(store: Store) -> None:
    await _outage(store)
    later = await store.recover("we_1", since=NOW + 21, now=NOW + 30, dry_run=True)
    assert later.count == 0
    everything = await store.recover("we_1", since=0, now=NOW + 30, dry_run=True)
    assert (everything.dead, everything.failing) == (2, 1)


async def test_recover_unknown_endpoint_or_handler(store: Store) -> None:
    await store.put_subscriber(handler("grant"))
    with pytest.raises(LookupError):
        await store.recover("we_nope", since=0, now=NOW)
    with pytest.raises(LookupError):
        await store.recover("handler:grant", since=0, now=NOW)


async def test_recover_reports_a_disabled_endpoint(store: Store) -> None:
    await store.put_subscriber(endpoint("we_1", status="disabled"))
    result = await store.recover("we_1", since=0, now=NOW)
    assert result.endpoint_status == "disabled" and result.count == 0


# -- totals -----------------------------------------------------------------------------------


async def test_delivery_stats_per_subscriber(store: Store) -> None:
    await _endpoints(store, "we_1")
    await store.put_subscriber(endpoint("we_off", status="disabled"))
    first = await _delivery(store, "cs_1", now=NOW + 5)
    await _delivery(store, "cs_2", now=NOW + 9)
    await _finish(store, first, _failed(None), NOW + 10)
    await _delivery(store, "cs_3", now=NOW + 11)

    stats = {s.subscriber_id: s for s in await store.delivery_stats()}

    we_1 = stats["we_1"]
    assert (we_1.pending, we_1.dead, we_1.oldest_pending_created_at) == (2, 1, NOW + 9)
    assert we_1.kind == "endpoint" and we_1.status == "enabled" and we_1.failing
    off = stats["we_off"]
    assert (off.status, off.pending, off.dead, off.oldest_pending_created_at) == (
        "disabled",
        0,
        0,
        None,
    )


async def test_delivery_stats_dead_resolved_by_a_later_delivery(store: Store) -> None:
    await _endpoints(store, "we_1")
    first = await _delivery(store, "cs_1")
    await _finish(store, first, _failed(None), NOW + 1)
    await store.recover("we_1", since=0, now=NOW + 2)
    (fresh,) = await store.claim_due(now=NOW + 2, owner="b", lease_s=LEASE_S, limit=10, handlers=())
    aid = await store.start_attempt(fresh.id, now=NOW + 2, owner="b", lease_s=LEASE_S)
    assert aid is not None

    (pending,) = await store.delivery_stats()
    assert (pending.dead, pending.pending) == (1, 1)  # resent, not yet delivered
    await store.finish_attempt(aid, fresh.id, OK, now=NOW + 3, disable_after_failing_s=1e9)
    (done,) = await store.delivery_stats()
    assert (done.dead, done.pending) == (0, 0)
    assert [d.status for d in (await store.list_deliveries()).items] == ["delivered", "dead"]


# -- jobs -------------------------------------------------------------------------------------


async def test_job_lease_one_holder_at_a_time_and_checkpoint(store: Store) -> None:
    first = await store.acquire_job("reconcile:stripe", owner="a", now=NOW, lease_s=60)
    assert first is not None and first.checkpoint is None and first.lease_until == NOW + 60
    assert await store.acquire_job("reconcile:stripe", owner="b", now=NOW + 1, lease_s=60) is None
    assert await store.save_job(
        "reconcile:stripe", owner="a", checkpoint="c1", now=NOW + 2, lease_s=60
    )
    assert await store.save_job(  # None: only the lease is extended
        "reconcile:stripe", owner="a", checkpoint=None, now=NOW + 2, lease_s=60
    )
    renewed = await store.acquire_job("reconcile:stripe", owner="a", now=NOW + 3, lease_s=60)
    assert renewed is not None and renewed.checkpoint == "c1"

    taken = await store.acquire_job("reconcile:stripe", owner="b", now=NOW + 64, lease_s=60)
    assert taken is not None and taken.owner == "b" and taken.checkpoint == "c1"
    assert not await store.save_job(
        "reconcile:stripe", owner="a", checkpoint="stale", now=NOW + 65, lease_s=60
    )
    await store.release_job("reconcile:stripe", owner="b")
    back = await store.acquire_job("reconcile:stripe", owner="a", now=NOW + 66, lease_s=60)
    assert back is not None and back.checkpoint == "c1"
    other = await store.acquire_job("prune", owner="b", now=NOW + 66, lease_s=60)
    assert other is not None and other.checkpoint is None


@pytest.mark.postgres
async def test_job_lease_two_instances_at_once_one_wins(open_pg_store: OpenStore) -> None:
    """Several PostgreSQL instances asking for the job in the same instant: exactly one
    holds it (the rest see the lease the winner just took)."""
    stores = [await open_pg_store() for _ in range(4)]
    leases = await asyncio.gather(
        *(s.acquire_job("race", owner=f"i{n}", now=NOW, lease_s=60) for n, s in enumerate(stores))
    )
    assert len([lease for lease in leases if lease is not None]) == 1
