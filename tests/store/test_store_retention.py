"""Retention (bridge/store/retention.py, bridge/retention.py): what is pruned, what never is,
and a pruned fact still a duplicate inside the inbox window. Every test runs against SQLite
and PostgreSQL, on a clock the test drives."""

from __future__ import annotations

import asyncio

import orjson

from adapters.base import Normalized
from bridge.config import RetentionConfig
from bridge.metrics import Metrics
from bridge.retention import Pruner
from bridge.store.base import DeliveryOutcome, InboxRecord, IngestResult, Store
from bridge.store.retention import DAY_S
from tests.receivers import ManualClock, wait_until
from tests.store.store_factories import (
    LEASE_S,
    NOW,
    endpoint,
    event,
    invoice_paid,
    normalized,
    pay_key,
    pi_decision,
)

OK = DeliveryOutcome(delivered=True, status_code=200, duration_ms=1.0)
DEAD = DeliveryOutcome(delivered=False, status_code=500, error="HTTP 500")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now

    def day(self, d: float) -> float:
        self.now = NOW + d * DAY_S
        return self.now


async def _ingest(store: Store, peid: str, n: Normalized, now: float) -> IngestResult:
    body = orjson.dumps({"id": peid, "object": "event", "type": "checkout.session.completed"})
    rec = InboxRecord("stripe", peid, "checkout.session.completed", now, body)
    return await store.ingest(
        rec, n, now=now, correlation_window_s=60.0, owner="a", lease_s=LEASE_S, local_handlers=()
    )


async def _finish(store: Store, result: IngestResult, outcome: DeliveryOutcome, now: float) -> None:
    for d in result.deliveries:
        assert d.attempt_id is not None
        await store.finish_attempt(
            d.attempt_id, d.id, outcome, now=now, disable_after_failing_s=1e9
        )


async def test_prune_keeps_what_is_unfinished_and_removes_the_rest(store: Store) -> None:
    clock = Clock()
    await store.put_subscriber(endpoint("we_1"))
    delivered = await _ingest(store, "evt_a", normalized(event("a")), NOW)
    await _finish(store, delivered, OK, NOW)
    dead = await _ingest(store, "evt_b", normalized(event("b")), NOW)
    await _finish(store, dead, DEAD, NOW)
    await _ingest(store, "evt_c", normalized(event("c")), NOW)  # stays pending
    await _ingest(store, "evt_thin", Normalized(fetch_related=True), NOW)  # awaits its fetch
    await _ingest(store, "evt_pi", pi_decision("pi_1"), NOW)  # held for correlation
    metrics = Metrics()
    pruner = Pruner(store, RetentionConfig(), clock=clock, metrics=metrics, window_rows=2)

    clock.day(29)
    assert (await pruner.run()).total() == 0
    clock.day(31)
    counts = await pruner.run()
    assert (counts.events, counts.deliveries, counts.attempts) == (1, 1, 1)
    assert counts.inbox == 4  # all but evt_thin: no stored event keeps its object there
    assert await store.get_event(delivered.events[0].id) is None
    kept = await store.counts()
    assert (kept["events"], kept["pending"], kept["dead"]) == (2, 1, 1)
    assert (kept["held"], kept["pending_fetch"], kept["inbox"]) == (1, 1, 1)
    assert (await store.list_attempts(limit=10)).count == 2
    assert 'paybridge_pruned_rows_total{kind="events"} 1.0' in metrics.render().decode()

    # the dead delivery is resolved by a resend that is delivered: then it goes too
    (again,) = await store.resend(dead.events[0].id, now=clock.now, subscriber_id="we_1")
    claimed = await store.claim_due(
        now=clock.now, owner="a", lease_s=LEASE_S, limit=10, handlers=()
    )
    assert again in {d.id for d in claimed}
    aid = await store.start_attempt(again, now=clock.now, owner="a", lease_s=LEASE_S)
    assert aid is not None
    await store.finish_attempt(aid, again, OK, now=clock.now, disable_after_failing_s=1e9)
    clock.day(62)
    counts = await pruner.run()
    assert (counts.events, counts.deliveries, counts.attempts) == (1, 2, 2)
    assert await store.get_event(dead.events[0].id) is None
    assert (await store.counts())["pending"] == 1


async def test_a_pruned_fact_is_still_a_duplicate_inside_the_inbox_window(store: Store) -> None:
    clock = Clock()
    retention = RetentionConfig(events_days=1, attempts_days=1, inbox_days=3)
    pruner = Pruner(store, retention, clock=clock)
    await store.put_subscriber(endpoint("we_1"))
    paid = event("in_1", "invoice.paid")
    first = await _ingest(store, "evt_invoice_paid", normalized(paid), NOW)
    await _finish(store, first, OK, NOW)

    counts = await pruner.run(dry_run=True)
    assert counts.total() == 0
    clock.day(1.5)
    assert (await pruner.run(dry_run=True)).stubs == 1
    assert await store.get_event(paid.id) is not None  # a dry run changes nothing
    counts = await pruner.run()
    assert (counts.stubs, counts.deliveries, counts.attempts) == (1, 1, 1)
    assert await store.get_event(paid.id) is None
    assert (await store.list_events(limit=None)).count == 0
    assert (await store.counts())["events"] == 0

    # another provider event naming the same fact, late inside the inbox window: no new event
    late = await _ingest(store, "evt_payment_succeeded", normalized(paid), clock.day(2))
    assert (late.duplicate, late.events, late.deliveries) == (False, [], [])
    retry = await _ingest(store, "evt_invoice_paid", normalized(paid), clock.now)
    assert retry.duplicate

    clock.day(3.5)  # the window has passed: the id and the first inbox row go
    counts = await pruner.run()
    assert (counts.events, counts.inbox) == (0, 1)
    assert (await store.counts())["inbox"] == 1  # evt_payment_succeeded, received on day 2


async def test_payment_intent_links_and_marks_go_after_the_inbox_window_never_twice(
    store: Store,
) -> None:
    clock = Clock()
    metrics = Metrics()
    retention = RetentionConfig(events_days=1, attempts_days=1, inbox_days=3)
    pruner = Pruner(store, retention, clock=clock, metrics=metrics, window_rows=2)
    await store.put_subscriber(endpoint("we_1"))
    await _ingest(store, "evt_in_paid", invoice_paid("in_1", pay_key(), pi="pi_linked"), NOW)
    alone = Normalized(standalone_payment_intents=["pi_alone"])
    await _ingest(store, "evt_cs", alone, NOW)
    held = await _ingest(store, "evt_pi_held", pi_decision("pi_held"), NOW)
    assert held.held == 1

    # late inside the inbox window, after a run: the link and the mark still decide
    clock.day(1.5)
    counts = await pruner.run()
    assert (counts.pi_links, counts.pi_standalone) == (0, 0)
    late = await _ingest(store, "evt_pi_linked", pi_decision("pi_linked"), clock.day(2))
    assert (late.events, late.held, late.dropped) == ([], 0, 1)  # the invoice's, not again
    first = await _ingest(store, "evt_pi_alone", pi_decision("pi_alone"), clock.now)
    assert (len(first.events), first.held) == (1, 0)  # emitted at once, not held
    retry = await _ingest(store, "evt_pi_alone", pi_decision("pi_alone"), clock.now)
    assert retry.duplicate and retry.events == []
    young = await _ingest(store, "evt_young", invoice_paid("in_2", pay_key(), pi="pi_2"), clock.now)
    assert young.events

    clock.day(3.5)  # the window has passed for the rows stored on day 0
    dry = await pruner.run(dry_run=True)
    assert (dry.pi_links, dry.pi_standalone) == (1, 1)
    counts = await pruner.run()
    assert (counts.pi_links, counts.pi_standalone) == (1, 1)
    assert (await store.counts())["held"] == 1  # the held outcome is never pruned
    text = metrics.render().decode()
    assert 'paybridge_pruned_rows_total{kind="pi_links"} 1.0' in text
    assert 'paybridge_pruned_rows_total{kind="pi_standalone"} 1.0' in text

    # the link stored on day 2 is inside the window still: it decides
    again = await _ingest(store, "evt_pi_2", pi_decision("pi_2"), clock.now)
    assert (again.events, again.held, again.dropped) == ([], 0, 1)


async def test_the_pruner_runs_once_per_period_of_its_clock(store: Store) -> None:
    clock = ManualClock()
    clock.now = NOW
    await store.put_subscriber(endpoint("we_1"))
    delivered = await _ingest(store, "evt_a", normalized(event("a")), NOW)
    await _finish(store, delivered, OK, NOW)
    clock.advance(31 * DAY_S)  # past events_days: the next run prunes evt_a
    loop = asyncio.ensure_future(Pruner(store, RetentionConfig(), clock=clock).run_forever(DAY_S))
    try:
        await asyncio.sleep(0)  # the loop starts its first period
        assert await store.get_event(delivered.events[0].id) is not None
        clock.advance(DAY_S)
        await wait_until(
            lambda: _gone(store, delivered.events[0].id), "no run at the end of the period"
        )
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


async def _gone(store: Store, event_id: str) -> bool:
    return await store.get_event(event_id) is None
