"""The store contract for held PaymentIntent outcomes (bridge/holds.py decides, the stores
persist): links, standalone PIs, claims and retries, look-up answers and the customer/amount
match at the window's end. Every test runs against SQLite and PostgreSQL."""

from __future__ import annotations

from adapters.base import Link, Normalized
from bridge.holds import Answer
from bridge.store.base import IngestResult, Store
from tests.store.store_factories import (
    LEASE_S,
    NOW,
    WINDOW_S,
    endpoint,
    event,
    ingest,
    invoice_paid,
    link,
    pay_key,
    pi_decision,
)

DUE = NOW + WINDOW_S


async def _claim_one(store: Store, now: float = DUE) -> int:
    claimed = await store.claim_holds(now=now, owner="a", lease_s=LEASE_S, limit=10)
    assert len(claimed) == 1
    return claimed[0].id


async def _resolve(
    store: Store, hold_id: int, answer: Answer | None = None, now: float = DUE
) -> IngestResult:
    return await store.resolve_hold(
        hold_id, answer=answer, now=now, owner="a", lease_s=LEASE_S, local_handlers=()
    )


async def _decide_all(store: Store, now: float = DUE) -> list[IngestResult]:
    claimed = await store.claim_holds(now=now, owner="a", lease_s=LEASE_S, limit=100)
    return [await _resolve(store, h.id, now=now) for h in claimed]


# -- at ingest ----------------------------------------------------------------------------------


async def test_ingest_link_first_drops_pi_decision(store: Store) -> None:
    await ingest(store, "evt_link", link("pi_1"))

    res = await ingest(store, "evt_pi", pi_decision("pi_1"))

    assert (res.held, res.dropped, res.events) == (0, 1, [])
    assert (await store.counts())["held"] == 0


async def test_ingest_link_after_drops_held_decision(store: Store) -> None:
    held = await ingest(store, "evt_pi", pi_decision("pi_1"))
    assert (held.held, held.events) == (1, [])
    assert (await store.counts())["held"] == 1

    res = await ingest(store, "evt_link", link("pi_1"))

    assert res.dropped == 1
    assert (await store.counts())["held"] == 0
    assert await store.claim_holds(now=DUE + 1, owner="a", lease_s=LEASE_S, limit=10) == []


async def test_ingest_standalone_pi_releases_held_decision(store: Store) -> None:
    await store.put_subscriber(endpoint("we_1"))
    ev = event("pi_1", "payment_intent.succeeded")
    await ingest(store, "evt_pi", pi_decision("pi_1", ev))

    res = await ingest(store, "evt_cs", Normalized(standalone_payment_intents=["pi_1"]))

    assert res.events == [ev]
    assert [d.subscriber_id for d in res.deliveries] == ["we_1"]
    assert (await store.counts())["held"] == 0


async def test_ingest_standalone_pi_known_first_emits_decision_at_once(store: Store) -> None:
    await ingest(store, "evt_cs", Normalized(standalone_payment_intents=["pi_1"]))
    ev = event("pi_1", "payment_intent.succeeded")

    res = await ingest(store, "evt_pi", pi_decision("pi_1", ev))

    assert (res.held, res.events) == (0, [ev])


async def test_ingest_standalone_pi_with_link_releases_nothing(store: Store) -> None:
    await ingest(store, "evt_link", link("pi_1"))

    res = await ingest(store, "evt_cs", Normalized(standalone_payment_intents=["pi_1"]))

    assert res.events == []


async def test_ingest_without_window_emits_pi_decision_at_once(store: Store) -> None:
    ev = event("pi_1", "payment_intent.succeeded")

    res = await ingest(store, "evt_pi", pi_decision("pi_1", ev), window_s=0)

    assert (res.held, res.events) == (0, [ev])


async def test_held_summary_counts_holds_and_names_the_oldest(store: Store) -> None:
    assert await store.held_summary() == (0, None)
    await ingest(store, "evt_pi1", pi_decision("pi_1"), now=NOW + 5)
    await ingest(store, "evt_pi2", pi_decision("pi_2"))

    assert await store.held_summary() == (2, NOW)
    await _resolve(store, await _claim_one(store, now=NOW + WINDOW_S))
    assert await store.held_summary() == (1, NOW + 5)


# -- claims and retries -------------------------------------------------------------------------


async def test_claim_holds_waits_for_window_and_lease(store: Store) -> None:
    ev = event("pi_1", "payment_intent.succeeded", livemode=True)
    await ingest(store, "evt_pi", pi_decision("pi_1", ev, key=pay_key()))
    assert await store.claim_holds(now=DUE - 1, owner="a", lease_s=LEASE_S, limit=10) == []

    claimed = await store.claim_holds(now=DUE, owner="a", lease_s=LEASE_S, limit=10)

    assert [(h.payment_intent, h.events, h.livemode) for h in claimed] == [("pi_1", [ev], True)]
    assert (claimed[0].held_at, claimed[0].decide_at, claimed[0].key) == (NOW, DUE, pay_key())
    assert await store.claim_holds(now=DUE + 1, owner="b", lease_s=LEASE_S, limit=10) == []
    expired = DUE + LEASE_S + 1
    again = await store.claim_holds(now=expired, owner="b", lease_s=LEASE_S, limit=10)
    assert [h.id for h in again] == [claimed[0].id]


async def test_claim_holds_with_lookups_is_due_at_once(store: Store) -> None:
    await ingest(store, "evt_pi", pi_decision("pi_1"), lookups=True)

    claimed = await store.claim_holds(now=NOW, owner="a", lease_s=LEASE_S, limit=10)

    assert [(h.payment_intent, h.checks, h.decide_at) for h in claimed] == [("pi_1", 0, DUE)]


async def test_retry_hold_gives_it_back_due_later_with_one_check_counted(store: Store) -> None:
    await ingest(store, "evt_pi", pi_decision("pi_1"), lookups=True)
    hid = await _claim_one(store, now=NOW)

    await store.retry_hold(hid, next_check_at=NOW + 4, owner="a")

    assert await store.claim_holds(now=NOW + 3, owner="b", lease_s=LEASE_S, limit=10) == []
    again = await store.claim_holds(now=NOW + 4, owner="b", lease_s=LEASE_S, limit=10)
    assert [(h.id, h.checks) for h in again] == [(hid, 1)]
    # a retry by an owner that lost the lease changes nothing
    await store.retry_hold(hid, next_check_at=NOW + 100, owner="a")
    assert await store.claim_holds(now=NOW + 4 + LEASE_S + 1, owner="c", lease_s=1, limit=1)


# -- deciding -----------------------------------------------------------------------------------


async def test_resolve_hold_without_answer_or_match_emits_events_and_deliveries(
    store: Store,
) -> None:
    await store.put_subscriber(endpoint("we_1"))
    ev = event("pi_1", "payment_intent.succeeded")
    await ingest(store, "evt_pi", pi_decision("pi_1", ev, key=pay_key()))

    res = await _resolve(store, await _claim_one(store))

    assert res.events == [ev] and [d.subscriber_id for d in res.deliveries] == ["we_1"]
    assert res.verdict is not None and res.verdict.basis == "no_match"
    assert await store.get_event(ev.id) == ev
    assert (await store.counts())["held"] == 0


async def test_resolve_hold_link_since_claim_wins(store: Store) -> None:
    await ingest(store, "evt_pi", pi_decision("pi_1"))
    hid = await _claim_one(store)
    await ingest(store, "evt_link", link("pi_1"))

    res = await _resolve(store, hid, Answer(None))

    assert res.events == [] and res.deliveries == []
    assert (await store.counts())["events"] == 0


async def test_resolve_hold_lookup_none_emits_even_when_an_invoice_matches(store: Store) -> None:
    await ingest(store, "evt_in", invoice_paid("in_1", pay_key()))
    await ingest(store, "evt_pi", pi_decision("pi_1", key=pay_key()), lookups=True)

    res = await _resolve(store, await _claim_one(store, now=NOW), Answer(None), now=NOW)

    assert len(res.events) == 1 and res.verdict is not None and res.verdict.basis == "lookup"


async def test_resolve_hold_lookup_invoice_stores_link_and_drops_the_pis_holds(
    store: Store,
) -> None:
    await ingest(
        store, "evt_fail", pi_decision("pi_1", event("f", "payment_intent.payment_failed"))
    )
    await ingest(store, "evt_pi", pi_decision("pi_1"), lookups=True)
    hid = await _claim_one(store, now=NOW)

    res = await _resolve(store, hid, Answer("in_9"), now=NOW)

    assert (res.dropped, res.events) == (2, [])
    assert (await store.counts())["held"] == 0
    later = await ingest(store, "evt_pi2", pi_decision("pi_1"))
    assert (later.held, later.dropped) == (0, 1)


async def test_resolve_hold_twice_is_duplicate(store: Store) -> None:
    await ingest(store, "evt_pi", pi_decision("pi_1"))
    hid = await _claim_one(store)
    await _resolve(store, hid)

    again = await _resolve(store, hid)

    assert again.duplicate and again.events == []
    assert (await store.counts())["events"] == 1


# -- the customer/amount match ------------------------------------------------------------------


async def test_match_drops_pi_paying_an_invoice_seen_before_or_after_it(store: Store) -> None:
    await ingest(store, "evt_in1", invoice_paid("in_1", pay_key(1000)), now=NOW - WINDOW_S + 1)
    await ingest(store, "evt_pi1", pi_decision("pi_1", key=pay_key(1000)))
    await ingest(store, "evt_pi2", pi_decision("pi_2", key=pay_key(2000)))
    await ingest(store, "evt_in2", invoice_paid("in_2", pay_key(2000)), now=DUE - 1)

    results = await _decide_all(store)

    assert [r.verdict.basis if r.verdict else None for r in results] == ["match", "match"]
    assert [r.events for r in results] == [[], []]
    # each PI is now linked to its invoice
    assert (await ingest(store, "evt_pi3", pi_decision("pi_2"))).dropped == 1


async def test_match_uses_each_invoice_payment_once(store: Store) -> None:
    await ingest(store, "evt_in", invoice_paid("in_1", pay_key()))
    await ingest(store, "evt_pi1", pi_decision("pi_1", key=pay_key()))
    await ingest(store, "evt_pi2", pi_decision("pi_2", key=pay_key()))

    results = await _decide_all(store)

    assert sorted(len(r.events) for r in results) == [0, 1]  # one invoice, one PI: two payments


async def test_match_ignores_other_amounts_outcomes_customers_and_old_invoices(
    store: Store,
) -> None:
    await ingest(store, "evt_old", invoice_paid("in_old", pay_key()), now=NOW - WINDOW_S - 1)
    await ingest(store, "evt_amt", invoice_paid("in_amt", pay_key(999)))
    await ingest(store, "evt_cus", invoice_paid("in_cus", pay_key(customer="cus_2")))
    await ingest(store, "evt_fail", invoice_paid("in_fail", pay_key(outcome="failed")))
    await ingest(store, "evt_pi", pi_decision("pi_1", key=pay_key()))

    (res,) = await _decide_all(store)

    assert len(res.events) == 1 and res.verdict is not None and res.verdict.basis == "no_match"


async def test_match_skips_invoices_already_linked_to_their_payment_intent(store: Store) -> None:
    await ingest(store, "evt_in", invoice_paid("in_1", pay_key()))
    await ingest(store, "evt_inpay", link("pi_sub", "in_1"))  # invoice_payment.paid
    await ingest(store, "evt_pi", pi_decision("pi_one_time", key=pay_key()))

    (res,) = await _decide_all(store)

    assert len(res.events) == 1  # the genuine one-time payment of the same amount


async def test_invoice_payment_reported_twice_is_kept_once(store: Store) -> None:
    await ingest(store, "evt_paid", invoice_paid("in_1", pay_key()))
    await ingest(store, "evt_succeeded", invoice_paid("in_1", pay_key()))
    await ingest(store, "evt_pi1", pi_decision("pi_1", key=pay_key()))
    await ingest(store, "evt_pi2", pi_decision("pi_2", key=pay_key()))

    results = await _decide_all(store)

    assert sorted(len(r.events) for r in results) == [0, 1]


async def test_forget_invoice_payments_deletes_only_those_seen_before(store: Store) -> None:
    await ingest(store, "evt_old", invoice_paid("in_old", pay_key()), now=NOW - 100)
    await ingest(store, "evt_new", invoice_paid("in_new", pay_key()))

    assert await store.forget_invoice_payments(seen_before=NOW - 50) == 1
    assert await store.forget_invoice_payments(seen_before=NOW - 50) == 0
    await ingest(store, "evt_pi", pi_decision("pi_1", key=pay_key()))
    (res,) = await _decide_all(store)
    assert res.verdict is not None and res.verdict.link == Link("pi_1", "in_new")
