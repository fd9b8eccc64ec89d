"""The store contract, the console's reads: filtered keyset pages of events, the provider
request of an event, overview counts, the 24-hour activity and an endpoint's last success.
Every test runs against SQLite and PostgreSQL (the ``store`` fixture)."""

from __future__ import annotations

from typing import Any

from bridge.events import Event
from bridge.store.base import DeliveryOutcome, EventQuery, Store
from tests.store.store_factories import NOW, endpoint, event, ingest, normalized, record

HOUR = 3600.0


def _about(key: str, *, customer: str, created: int = int(NOW), **obj: Any) -> Event:
    """An invoice event about ``customer`` (and whatever ``obj`` names), created at ``created``."""
    return Event.make(
        type="invoice.paid",
        dedupe_key=f"invoice:{key}:paid",
        source="stripe",
        source_event_id=f"evt_{key}",
        created=created,
        data_object={"id": key, "object": "invoice", "customer": customer, **obj},
        object_type="invoice",
        object_id=key,
    )


async def _ids(store: Store, query: EventQuery, **kw: Any) -> list[str]:
    page = await store.browse_events(query, **kw)
    return [e.id for e in page.items]


async def test_browse_events_filters_by_ids_type_source_and_time(store: Store) -> None:
    a = _about("in_a", customer="cus_1", subscription="sub_1")
    b = _about("in_b", customer="cus_2", created=int(NOW + HOUR))
    c = event("cs_1")
    await ingest(store, "evt_a", normalized(a))
    await ingest(store, "evt_b", normalized(b))
    await ingest(store, "evt_c", normalized(c))

    assert await _ids(store, EventQuery()) == [c.id, b.id, a.id]
    assert await _ids(store, EventQuery(customer="cus_1")) == [a.id]
    assert await _ids(store, EventQuery(subscription="sub_1")) == [a.id]
    assert await _ids(store, EventQuery(invoice="in_b")) == [b.id]
    assert await _ids(store, EventQuery(type="invoice.paid")) == [b.id, a.id]
    assert await _ids(store, EventQuery(source="payment_kit")) == []
    window = EventQuery(created_from=int(NOW + 1), created_to=int(NOW + 2 * HOUR))
    assert await _ids(store, window) == [b.id]
    assert await _ids(store, EventQuery(created_to=int(NOW))) == []
    both = EventQuery(type="invoice.paid", customer="cus_2", source="stripe")
    assert await _ids(store, both) == [b.id]


async def test_browse_events_summary_carries_the_look_up_ids(store: Store) -> None:
    ev = _about("in_s", customer="cus_s", parent={"subscription_details": {"subscription": "s"}})
    await ingest(store, "evt_s", normalized(ev))
    (row,) = (await store.browse_events(EventQuery())).items
    assert (row.id, row.type, row.source, row.source_event_id) == (
        ev.id,
        "invoice.paid",
        "stripe",
        "evt_in_s",
    )
    assert (row.customer, row.subscription, row.invoice) == ("cus_s", "s", "in_s")
    assert row.created == int(NOW) and row.stored_at == NOW


async def test_browse_events_pages_through_a_keyset(store: Store) -> None:
    made = [event(f"cs_{i}") for i in range(7)]
    for i, ev in enumerate(made):
        await ingest(store, f"evt_{i}", normalized(ev))
    newest_first = [e.id for e in reversed(made)]
    seen: list[str] = []
    before = None
    for _ in range(4):
        page = await store.browse_events(EventQuery(), before=before, limit=3)
        seen += [e.id for e in page.items]
        before = page.next_before
        if before is None:
            break
    assert seen == newest_first
    last = await store.browse_events(EventQuery(), limit=7)
    assert last.next_before is None  # exactly one page: no empty page after it


async def test_get_inbox_returns_the_provider_request(store: Store) -> None:
    await ingest(store, "evt_in", normalized(event("cs_in")))
    got = await store.get_inbox("stripe", "evt_in")
    assert got is not None and got.payload == record("evt_in").payload
    assert (got.provider, got.provider_event_id, got.received_at) == ("stripe", "evt_in", NOW)
    assert await store.get_inbox("stripe", "evt_nope") is None
    assert await store.get_inbox("payment_kit", "evt_in") is None


async def _fail_first_attempt(store: Store, key: str, *, dead: bool, now: float) -> None:
    res = await ingest(store, f"evt_{key}", normalized(event(key)), now=now)
    (d,) = res.deliveries
    assert d.attempt_id is not None
    outcome = DeliveryOutcome(
        delivered=False, status_code=500, next_attempt_at=None if dead else now + 60
    )
    await store.finish_attempt(d.attempt_id, d.id, outcome, now=now, disable_after_failing_s=1e9)


async def test_overview_counts_and_oldest_pending(store: Store) -> None:
    empty = await store.overview(since=NOW)
    assert (empty.events_since, empty.pending, empty.dead, empty.oldest_pending_at) == (
        0,
        0,
        0,
        None,
    )
    await store.put_subscriber(endpoint("we_1"))
    await _fail_first_attempt(store, "cs_p", dead=False, now=NOW + 10)
    await _fail_first_attempt(store, "cs_d", dead=True, now=NOW + 20)
    old = _about("in_o", customer="c", created=int(NOW - 5))  # created before ``since``
    await ingest(store, "evt_old", normalized(old), now=NOW + 30)  # its delivery is pending
    stats = await store.overview(since=NOW)
    assert (stats.events_since, stats.pending, stats.dead) == (2, 2, 1)
    assert stats.oldest_pending_at == NOW + 10


async def test_activity_counts_events_and_failed_attempts_per_bucket(store: Store) -> None:
    await store.put_subscriber(endpoint("we_1"))
    since = NOW - 2 * HOUR
    await ingest(store, "evt_x", normalized(_about("in_x", customer="c", created=int(since))))
    await _fail_first_attempt(store, "cs_f", dead=False, now=NOW + 5)
    await ingest(
        store, "evt_late", normalized(_about("in_l", customer="c", created=int(NOW + HOUR)))
    )
    buckets = await store.activity(since=since, bucket_s=HOUR, buckets=3)
    assert [b.start for b in buckets] == [since, since + HOUR, since + 2 * HOUR]
    # in_x in the first hour; cs_f (created NOW) and its failed attempt in the third; in_l after
    assert [(b.events, b.failed_attempts) for b in buckets] == [(1, 0), (0, 0), (1, 1)]


async def test_last_success_at_is_the_latest_succeeded_attempt(store: Store) -> None:
    await store.put_subscriber(endpoint("we_1"))
    assert await store.last_success_at("we_1") is None
    for i, delivered in enumerate((True, True, False)):
        res = await ingest(store, f"evt_{i}", normalized(event(f"cs_{i}")), now=NOW + i)
        (d,) = res.deliveries
        assert d.attempt_id is not None
        outcome = DeliveryOutcome(delivered=delivered, next_attempt_at=NOW + 100)
        await store.finish_attempt(
            d.attempt_id, d.id, outcome, now=NOW + 10 + i, disable_after_failing_s=1e9
        )
    assert await store.last_success_at("we_1") == NOW + 11
    assert await store.last_success_at("we_other") is None


async def test_a_time_range_pages_newest_created_first(store: Store) -> None:
    # Stored out of created order (a replayed old event arrives last); two share a second.
    made = [
        _about(f"in_t{i}", customer="c", created=int(NOW) + offset)
        for i, offset in enumerate((30, 10, 20, 10, 50, -100))
    ]
    for i, ev in enumerate(made):
        await ingest(store, f"evt_t{i}", normalized(ev))
    query = EventQuery(created_from=int(NOW))
    by_created = [made[i].id for i in (4, 0, 2, 3, 1)]  # ties: the later stored first
    seen: list[str] = []
    before = None
    while True:
        page = await store.browse_events(query, before=before, limit=2)
        seen += [e.id for e in page.items]
        if page.next_before is None:
            break
        before = page.next_before
    assert seen == by_created
    keyed = EventQuery(created_from=int(NOW), customer="c")  # an indexed filter: seq order
    assert await _ids(store, keyed) == [made[i].id for i in (4, 3, 2, 1, 0)]
