"""The store contract (bridge/store/base.py), part one: ingest and subscribers (held
PaymentIntent outcomes: test_store_holds.py). Every test runs against SQLite and PostgreSQL
(the ``store`` fixture)."""

from __future__ import annotations

import pytest

from adapters.base import Normalized
from bridge.store.base import Store
from tests.store.store_factories import (
    LEASE_S,
    NOW,
    endpoint,
    event,
    handler,
    ingest,
    normalized,
)

# -- ingest -------------------------------------------------------------------------------------


async def test_ingest_stores_inbox_events_and_leased_deliveries(store: Store) -> None:
    await store.put_subscriber(endpoint("we_1"))
    await store.put_subscriber(endpoint("we_other", ["invoice.paid"]))
    await store.put_subscriber(handler("audit"))
    await store.put_subscriber(handler("remote"))
    ev = event("cs_1")

    res = await ingest(store, "evt_1", normalized(ev), owner="a", local=["audit"])

    assert not res.duplicate
    assert res.events == [ev]
    assert sorted(d.subscriber_id for d in res.deliveries) == ["handler:audit", "we_1"]
    assert all(d.event == ev and d.next_attempt_at == NOW for d in res.deliveries)
    by_sub = {d.subscriber_id: d for d in res.deliveries}
    # the endpoint's first attempt is recorded in the ingest transaction; handlers record theirs
    assert (by_sub["handler:audit"].attempts, by_sub["handler:audit"].attempt_id) == (0, None)
    assert by_sub["we_1"].attempts == 1 and by_sub["we_1"].attempt_id is not None
    first = await store.list_attempts(event_id=ev.id)
    assert [(a.id, a.attempt, a.status) for a in first.items] == [
        (by_sub["we_1"].attempt_id, 1, "pending")
    ]
    counts = await store.counts()
    assert (counts["inbox"], counts["events"], counts["pending"]) == (1, 1, 3)
    stored = await store.get_event(ev.id)
    assert stored is not None and stored.to_json() == ev.to_json()
    # leased to "a": nobody else gets them; the remote handler's delivery is free at once
    other = await store.claim_due(
        now=NOW, owner="b", lease_s=LEASE_S, limit=10, handlers=["audit", "remote"]
    )
    assert [d.subscriber_id for d in other] == ["handler:remote"]


@pytest.mark.parametrize("subscribed", [True, False], ids=["subscribed", "no-subscriber"])
async def test_ingest_duplicate_provider_event_stores_nothing_new(
    store: Store, subscribed: bool
) -> None:
    """With and without a subscriber (PostgreSQL stores the latter in one statement)."""
    if subscribed:
        await store.put_subscriber(endpoint("we_1"))
    await ingest(store, "evt_1", normalized(event("cs_1")))

    again = await ingest(store, "evt_1", normalized(event("cs_2")))

    assert again.duplicate and again.events == [] and again.deliveries == []
    counts = await store.counts()
    assert (counts["inbox"], counts["events"], counts["pending"]) == (1, 1, int(subscribed))
    fresh = await ingest(store, "evt_2", normalized(event("cs_1"), event("cs_3")))
    assert not fresh.duplicate and [e.object_id for e in fresh.events] == ["cs_3"]


async def test_ingest_same_dedupe_key_from_two_provider_events_keeps_one_event(
    store: Store,
) -> None:
    await store.put_subscriber(endpoint("we_1"))
    first = await ingest(store, "evt_1", normalized(event("in_1", "invoice.paid")))

    second = await ingest(store, "evt_2", normalized(event("in_1", "invoice.paid")))

    assert len(first.events) == 1
    assert not second.duplicate and second.events == [] and second.deliveries == []
    counts = await store.counts()
    assert (counts["inbox"], counts["events"], counts["pending"]) == (2, 1, 1)


async def test_ingest_several_events_keeps_their_order(store: Store) -> None:
    evs = [event("z_last"), event("a_first"), event("m_middle")]

    res = await ingest(store, "evt_1", normalized(*evs))

    assert res.events == evs
    page = await store.list_events(limit=None)
    assert [e.id for e in page.items] == [e.id for e in reversed(evs)]


async def test_ingest_ignored_event_is_counted(store: Store) -> None:
    res = await ingest(store, "evt_1", Normalized(ignored_reason="type not handled"))

    assert not res.duplicate and res.events == []
    counts = await store.counts()
    assert (counts["inbox"], counts["ignored"], counts["events"]) == (1, 1, 0)


# -- subscribers --------------------------------------------------------------------------------


async def test_subscriber_put_get_roundtrip_and_replace(store: Store) -> None:
    sub = endpoint(
        "we_1",
        ["invoice.*", "refund.succeeded"],
        signature="stripe",
        previous_secret="whsec_old",
        previous_secret_expires_at=NOW + 3600,
        description="billing",
        metadata={"team": "ops", "n": 1},
        livemode=True,
        api_version="2025-03-31.basil",
        failing_since=NOW - 5,
    )
    await store.put_subscriber(sub)
    assert await store.get_subscriber("we_1") == sub

    changed = endpoint("we_1", ["*"], status="disabled", disabled_reason="manual")
    await store.put_subscriber(changed)

    assert await store.get_subscriber("we_1") == changed
    assert await store.get_subscriber("we_missing") is None


async def test_list_subscribers_filters_and_pages_newest_first(store: Store) -> None:
    for i in range(5):
        await store.put_subscriber(endpoint(f"we_{i}", created_at=NOW + i, livemode=i % 2 == 1))
    await store.put_subscriber(handler("audit"))

    everything = await store.list_subscribers()
    endpoints = await store.list_subscribers(kind="endpoint", offset=1, limit=2)
    live = await store.list_subscribers(kind="endpoint", livemode=True)
    handlers = await store.list_subscribers(kind="handler")

    assert everything.count == 6
    assert (endpoints.count, [s.id for s in endpoints.items]) == (5, ["we_3", "we_2"])
    assert [s.id for s in live.items] == ["we_3", "we_1"]
    assert [s.id for s in handlers.items] == ["handler:audit"]


async def test_delete_subscriber_removes_its_pending_deliveries(store: Store) -> None:
    await store.put_subscriber(endpoint("we_1"))
    await store.put_subscriber(endpoint("we_2"))
    await ingest(store, "evt_1", normalized(event("cs_1")))

    assert await store.delete_subscriber("we_1") is True

    assert await store.get_subscriber("we_1") is None
    assert (await store.counts())["pending"] == 1
    assert await store.delete_subscriber("we_1") is False


async def test_subscriber_change_applies_to_next_ingest(store: Store) -> None:
    await store.put_subscriber(endpoint("we_1", ["invoice.paid"]))
    first = await ingest(store, "evt_1", normalized(event("cs_1")))
    await store.put_subscriber(endpoint("we_1", ["checkout.session.*"]))

    second = await ingest(store, "evt_2", normalized(event("cs_2")))

    assert first.deliveries == []
    assert [d.subscriber_id for d in second.deliveries] == ["we_1"]
