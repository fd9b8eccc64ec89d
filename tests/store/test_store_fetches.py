"""Thin events whose related object is fetched later: leased, completed once (both stores)."""

from __future__ import annotations

from adapters.base import Normalized
from bridge.store.base import Store
from tests.store.store_factories import LEASE_S, NOW, WINDOW_S, endpoint, event, ingest, record


async def test_pending_fetch_is_leased_then_completed_once(store: Store) -> None:
    await store.put_subscriber(endpoint("we_1"))
    first = await ingest(store, "evt_thin", Normalized(fetch_related=True))
    assert not first.duplicate and first.events == []
    assert (await store.counts())["pending_fetch"] == 1

    claimed = await store.claim_pending_fetches(now=NOW, owner="a", lease_s=LEASE_S, limit=10)
    assert [r.provider_event_id for r in claimed] == ["evt_thin"]
    assert claimed[0].payload == record("evt_thin").payload
    # leased: another instance gets nothing until the lease expires
    assert await store.claim_pending_fetches(now=NOW, owner="b", lease_s=LEASE_S, limit=10) == []
    later = NOW + LEASE_S + 1
    retaken = await store.claim_pending_fetches(now=later, owner="b", lease_s=LEASE_S, limit=10)
    assert [r.provider_event_id for r in retaken] == ["evt_thin"]

    fact = event("sub_thin", "customer.subscription.created")
    kwargs = dict(correlation_window_s=WINDOW_S, lease_s=LEASE_S, local_handlers=())
    done = await store.complete_fetch(
        claimed[0], record("evt_thin:fetched"), Normalized(events=[fact]), now=later, owner="b",
        **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip
    assert [e.id for e in done.events] == [fact.id]
    assert [d.subscriber_id for d in done.deliveries] == ["we_1"]
    again = await store.complete_fetch(
        claimed[0], record("evt_thin:fetched"), Normalized(events=[fact]), now=later, owner="a",
        **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip
    assert again.duplicate
    counts = await store.counts()
    assert (counts["pending_fetch"], counts["events"], counts["inbox"]) == (0, 1, 2)
    assert await store.claim_pending_fetches(now=later * 2, owner="c", lease_s=1, limit=10) == []
