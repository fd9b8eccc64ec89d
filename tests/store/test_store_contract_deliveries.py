"""The store contract (bridge/store/base.py), part two: claims, leases, attempts and their
outcomes, resend and the read side. Every test runs against SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest

from bridge.store.base import Delivery, DeliveryOutcome, Store
from tests.store.store_factories import (
    LEASE_S,
    NOW,
    endpoint,
    event,
    handler,
    ingest,
    normalized,
)

LATER = NOW + LEASE_S + 1  # every lease taken at NOW has expired
DISABLE_AFTER_S = 3600.0
OK = DeliveryOutcome(delivered=True, status_code=200, response_body="ok", duration_ms=12.5)


def _failed(next_at: float | None, **changes: Any) -> DeliveryOutcome:
    """A failed attempt, retried at ``next_at`` (None: dead)."""
    failed = DeliveryOutcome(
        delivered=False, status_code=500, error="HTTP 500", next_attempt_at=next_at
    )
    return dataclasses.replace(failed, **changes)


async def _claim(
    store: Store,
    now: float,
    owner: str = "b",
    handlers: Sequence[str] = (),
    exclude_subscribers: Sequence[str] = (),
) -> list[Delivery]:
    return await store.claim_due(
        now=now,
        owner=owner,
        lease_s=LEASE_S,
        limit=100,
        handlers=handlers,
        exclude_subscribers=exclude_subscribers,
    )


async def _attempt(
    store: Store, d: Delivery, outcome: DeliveryOutcome, now: float, owner: str = "a"
) -> int:
    aid = await _recorded_first_attempt(store, d)
    if aid is None:
        aid = await store.start_attempt(d.id, now=now, owner=owner, lease_s=LEASE_S)
    assert aid is not None
    await store.finish_attempt(aid, d.id, outcome, now=now, disable_after_failing_s=DISABLE_AFTER_S)
    return aid


async def _recorded_first_attempt(store: Store, d: Delivery) -> int | None:
    """The first attempt ingest recorded for ``d``, while it is still open (the dispatcher
    makes that attempt without calling start_attempt)."""
    if d.attempt_id is None:
        return None
    page = await store.list_attempts(event_id=d.event.id, subscriber_id=d.subscriber_id)
    open_ = [a for a in page.items if a.id == d.attempt_id and a.status == "pending"]
    return d.attempt_id if open_ else None


async def _reattempt(
    store: Store, d: Delivery, outcome: DeliveryOutcome, now: float, *handlers: str
) -> int:
    """Claim ``d`` again as owner "a" (it must be due at ``now``) and attempt it."""
    claimed = await _claim(store, now, owner="a", handlers=handlers)
    assert d.id in [x.id for x in claimed]
    return await _attempt(store, d, outcome, now)


async def _one_delivery(store: Store, sid: str = "we_1", key: str = "cs_1") -> Delivery:
    """Ingest one event with ``sid`` subscribed; its delivery, leased to owner "a"."""
    if await store.get_subscriber(sid) is None:
        await store.put_subscriber(endpoint(sid))
    res = await ingest(store, f"evt_{key}", normalized(event(key)), owner="a")
    (d,) = [d for d in res.deliveries if d.subscriber_id == sid]
    return d


# -- claims and leases --------------------------------------------------------------------------


async def test_claim_due_respects_next_attempt_at(store: Store) -> None:
    d = await _one_delivery(store)
    await _attempt(store, d, _failed(NOW + 100), NOW)

    assert await _claim(store, NOW + 99) == []
    due = await _claim(store, NOW + 100)

    assert [(x.id, x.attempts, x.next_attempt_at) for x in due] == [(d.id, 1, NOW + 100)]
    assert due[0].event == d.event


async def test_claim_due_orders_by_due_time_and_honours_limit(store: Store) -> None:
    await store.put_subscriber(endpoint("we_1"))
    for i in range(5):
        await ingest(store, f"evt_{i}", normalized(event(f"cs_{i}")), now=NOW + i)

    first = await store.claim_due(now=LATER + 10, owner="b", lease_s=LEASE_S, limit=3, handlers=())
    rest = await _claim(store, LATER + 10)

    assert [d.next_attempt_at for d in first] == [NOW, NOW + 1, NOW + 2]
    assert [d.next_attempt_at for d in rest] == [NOW + 3, NOW + 4]


async def test_claim_due_never_hands_out_a_live_lease(store: Store) -> None:
    await _one_delivery(store)

    assert await _claim(store, NOW + 1, owner="b") == []
    assert await _claim(store, NOW + 1, owner="a") == []


async def test_claim_due_expired_lease_is_taken_over(store: Store) -> None:
    d = await _one_delivery(store)

    taken = await _claim(store, LATER, owner="b")

    assert [x.id for x in taken] == [d.id]
    assert await store.start_attempt(d.id, now=LATER, owner="a", lease_s=LEASE_S) is None
    assert await store.start_attempt(d.id, now=LATER, owner="b", lease_s=LEASE_S) is not None


async def test_start_attempt_extends_the_lease(store: Store) -> None:
    d = await _one_delivery(store)
    aid = await store.start_attempt(d.id, now=NOW + 20, owner="a", lease_s=LEASE_S)

    assert aid is not None
    assert await _claim(store, NOW + LEASE_S + 1, owner="b") == []  # lease now ends at NOW+50
    assert len(await _claim(store, NOW + 20 + LEASE_S + 1, owner="b")) == 1


async def test_start_attempt_refused_once_delivered(store: Store) -> None:
    d = await _one_delivery(store)
    await _attempt(store, d, OK, NOW)

    assert await store.start_attempt(d.id, now=NOW + 1, owner="a", lease_s=LEASE_S) is None


async def test_claim_due_skips_excluded_and_disabled_subscribers(store: Store) -> None:
    await store.put_subscriber(endpoint("we_1"))
    await store.put_subscriber(endpoint("we_2"))
    await store.put_subscriber(endpoint("we_3"))
    await ingest(store, "evt_1", normalized(event("cs_1")))
    await store.put_subscriber(endpoint("we_3", status="disabled"))

    due = await _claim(store, LATER, exclude_subscribers=["we_1"])

    assert [d.subscriber_id for d in due] == ["we_2"]


async def test_claim_due_takes_handlers_only_by_name(store: Store) -> None:
    await store.put_subscriber(handler("audit"))
    await store.put_subscriber(handler("mailer"))
    await ingest(store, "evt_1", normalized(event("cs_1")))

    none = await _claim(store, NOW)
    audit = await _claim(store, NOW, handlers=["audit"])

    assert none == []
    assert [d.subscriber_id for d in audit] == ["handler:audit"]


async def test_release_gives_back_leases_of_the_owner_only(store: Store) -> None:
    d = await _one_delivery(store)
    await store.release([d.id], owner="someone-else")
    assert await _claim(store, NOW + 1) == []

    await store.release([d.id], owner="a")

    assert [x.id for x in await _claim(store, NOW + 1)] == [d.id]
    await store.release([], owner="a")  # nothing to do, no error


# -- outcomes -----------------------------------------------------------------------------------


async def test_finish_attempt_delivered(store: Store) -> None:
    d = await _one_delivery(store)

    aid = await _attempt(store, d, OK, NOW + 1)

    page = await store.list_attempts(event_id=d.event.id)
    (rec,) = page.items
    assert (rec.id, rec.delivery_id, rec.attempt, rec.status) == (aid, d.id, 1, "succeeded")
    assert (rec.status_code, rec.response_body, rec.duration_ms) == (200, "ok", 12.5)
    # the first attempt was recorded by the ingest transaction, at ingest time
    assert (rec.started_at, rec.finished_at, rec.delivery_status) == (NOW, NOW + 1, "delivered")
    assert (await store.counts())["pending"] == 0
    assert await _claim(store, LATER * 2) == []


async def test_finish_attempt_retry_reschedules(store: Store) -> None:
    d = await _one_delivery(store)

    await _attempt(store, d, _failed(NOW + 60), NOW)

    (rec,) = (await store.list_attempts(event_id=d.event.id)).items
    assert (rec.status, rec.error, rec.delivery_status) == ("failed", "HTTP 500", "pending")
    again = await _claim(store, NOW + 60)
    assert [(x.id, x.attempts) for x in again] == [(d.id, 1)]


async def test_finish_attempt_without_next_time_is_dead(store: Store) -> None:
    d = await _one_delivery(store)

    await _attempt(store, d, _failed(None), NOW)

    counts = await store.counts()
    assert (counts["pending"], counts["dead"]) == (0, 1)
    assert await _claim(store, LATER * 2) == []


async def test_finish_attempt_disable_endpoint_disables_it_now(store: Store) -> None:
    d = await _one_delivery(store)

    await _attempt(store, d, _failed(None, status_code=410, disable_endpoint="410 Gone"), NOW)

    sub = await store.get_subscriber("we_1")
    assert sub is not None and (sub.status, sub.disabled_reason) == ("disabled", "410 Gone")
    later = await ingest(store, "evt_2", normalized(event("cs_2")))
    assert later.deliveries == []


async def test_finish_attempt_failure_streak_disables_after_limit(store: Store) -> None:
    d = await _one_delivery(store)
    await _attempt(store, d, _failed(NOW + 10), NOW)
    sub = await store.get_subscriber("we_1")
    assert sub is not None and (sub.status, sub.failing_since) == ("enabled", NOW)

    await _reattempt(store, d, _failed(NOW + 20), NOW + DISABLE_AFTER_S - 1)
    still = await store.get_subscriber("we_1")
    assert still is not None and still.status == "enabled"
    await _reattempt(store, d, _failed(NOW + 30), NOW + DISABLE_AFTER_S)

    off = await store.get_subscriber("we_1")
    assert off is not None and off.status == "disabled" and off.disabled_reason
    assert off.failing_since == NOW


async def test_finish_attempt_success_resets_failure_streak(store: Store) -> None:
    d = await _one_delivery(store)
    await _attempt(store, d, _failed(NOW + 10), NOW)
    await _reattempt(store, d, OK, NOW + DISABLE_AFTER_S - 1)
    sub = await store.get_subscriber("we_1")
    assert sub is not None and sub.failing_since is None

    d2 = await _one_delivery(store, key="cs_2")
    await _attempt(store, d2, _failed(NOW + 10), NOW + DISABLE_AFTER_S)

    after = await store.get_subscriber("we_1")
    assert after is not None and after.status == "enabled"
    assert after.failing_since == NOW + DISABLE_AFTER_S


async def test_failure_streak_never_disables_handlers(store: Store) -> None:
    await store.put_subscriber(handler("audit"))
    res = await ingest(store, "evt_1", normalized(event("cs_1")), owner="a", local=["audit"])
    (d,) = res.deliveries

    await _attempt(store, d, _failed(NOW + 10), NOW)
    await _reattempt(store, d, _failed(NOW + 10), NOW + DISABLE_AFTER_S * 2, "audit")

    sub = await store.get_subscriber("handler:audit")
    assert sub is not None and sub.status == "enabled"


# -- resend -------------------------------------------------------------------------------------


async def test_resend_queues_all_matching_enabled_endpoints(store: Store) -> None:
    await store.put_subscriber(endpoint("we_1"))
    ev = event("cs_1")
    await ingest(store, "evt_1", normalized(ev))
    await store.put_subscriber(endpoint("we_2", ["checkout.session.*"]))
    await store.put_subscriber(endpoint("we_3", ["invoice.paid"]))
    await store.put_subscriber(endpoint("we_4", status="disabled"))
    await store.put_subscriber(handler("audit"))

    ids = await store.resend(ev.id, now=NOW + 5)

    due = await _claim(store, NOW + 5, handlers=["audit"])
    assert sorted(d.id for d in due) == sorted(ids)
    assert sorted(d.subscriber_id for d in due) == ["we_1", "we_2"]


async def test_resend_to_one_subscriber(store: Store) -> None:
    await store.put_subscriber(endpoint("we_1"))
    await store.put_subscriber(endpoint("we_2"))
    ev = event("cs_1")
    await ingest(store, "evt_1", normalized(ev))

    ids = await store.resend(ev.id, now=NOW + 5, subscriber_id="we_2")

    due = await _claim(store, NOW + 5)
    assert [(d.id, d.subscriber_id, d.attempts) for d in due] == [(ids[0], "we_2", 0)]


async def test_resend_unknown_event_raises_lookup_error(store: Store) -> None:
    with pytest.raises(LookupError):
        await store.resend("evt_missing", now=NOW)


# -- reads --------------------------------------------------------------------------------------


async def test_list_events_newest_first_with_type_filter_and_pages(store: Store) -> None:
    evs = [event(f"cs_{i}") if i % 2 else event(f"in_{i}", "invoice.paid") for i in range(7)]
    for i, ev in enumerate(evs):
        await ingest(store, f"evt_{i}", normalized(ev), now=NOW + i)

    page = await store.list_events(offset=1, limit=2)
    paid = await store.list_events(type="invoice.paid", limit=None)
    everything = await store.list_events(limit=None)

    assert (page.count, page.items) == (7, [evs[5], evs[4]])
    assert (paid.count, paid.items) == (4, [evs[6], evs[4], evs[2], evs[0]])
    assert everything.items == list(reversed(evs))
    assert (await store.list_events()).items == list(reversed(evs))


async def test_get_event_unknown_is_none(store: Store) -> None:
    assert await store.get_event("evt_missing") is None


async def test_list_attempts_by_event_and_subscriber_newest_first(store: Store) -> None:
    d = await _one_delivery(store)
    other = await _one_delivery(store, "we_2", key="cs_2")
    first = await _attempt(store, d, _failed(NOW + 1, response_body="x" * 5000), NOW)
    second = await _reattempt(store, d, OK, NOW + 1)
    third = await _attempt(store, other, OK, NOW + 2)

    by_event = await store.list_attempts(event_id=d.event.id)
    by_sub = await store.list_attempts(subscriber_id="we_2")
    paged = await store.list_attempts(offset=1, limit=1)

    assert [a.id for a in by_event.items] == [second, first]
    assert by_event.items[1].response_body == "x" * 1024
    assert [a.subscriber_id for a in by_sub.items] == ["we_2"]
    # 4: the ingest of cs_2 also recorded the (still open) first attempt to we_1
    assert (paged.count, [a.id for a in paged.items]) == (4, [third])


async def test_counts_of_an_empty_store_are_zero(store: Store) -> None:
    counts = await store.counts()

    assert counts == {
        "inbox": 0,
        "ignored": 0,
        "events": 0,
        "pending": 0,
        "dead": 0,
        "held": 0,
        "pending_fetch": 0,
    }
