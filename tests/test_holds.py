"""The PaymentIntent rule's pure decisions (bridge/holds.py): no store, no clock."""

from __future__ import annotations

from bridge.events import Event
from bridge.holds import (
    LOOKUP_RETRY_MAX_S,
    Answer,
    HeldRow,
    Hold,
    Known,
    Seen,
    decide_hold,
    next_check_at,
    plan_ingest,
)
from bridge.normalized import Deferred, Link, Normalized, PaymentKey

KEY = PaymentKey("succeeded", "cus_1", 1000, "usd")


def _event(pi: str) -> Event:
    return Event.make(
        type="payment_intent.succeeded",
        dedupe_key=f"pi:{pi}:succeeded",
        source="stripe",
        source_event_id=f"evt_{pi}",
        created=1,
        data_object={"id": pi},
        object_type="payment_intent",
        object_id=pi,
    )


def _hold(held_at: float = 100.0, window_s: float = 60.0, key: PaymentKey | None = KEY) -> Hold:
    return Hold(1, "pi_1", False, [_event("pi_1")], held_at, held_at + window_s, 0, key)


def test_plan_ingest_holds_until_window_end_or_at_once_with_lookups() -> None:
    n = Normalized(deferred=[Deferred("pi_1", (_event("pi_1"),), key=KEY)])

    quiet = plan_ingest(n, Known(), now=10.0, window_s=60.0, lookups=False)
    asking = plan_ingest(n, Known(), now=10.0, window_s=60.0, lookups=True)

    assert [(h.held_at, h.decide_at, h.next_check_at) for h in quiet.holds] == [(10, 70, 70)]
    assert [h.next_check_at for h in asking.holds] == [10.0]
    assert quiet.emit == [] and quiet.dropped == 0


def test_plan_ingest_link_drops_rows_and_standalone_releases_the_others() -> None:
    rows = (HeldRow(1, "pi_1", (_event("pi_1"),)), HeldRow(2, "pi_2", (_event("pi_2"),)))
    n = Normalized(links=[Link("pi_1", "in_1")], standalone_payment_intents=["pi_2"])

    plan = plan_ingest(n, Known(held=rows), now=0.0, window_s=60.0, lookups=False)

    assert (plan.drop, plan.release, plan.dropped) == ([1], [2], 1)
    assert plan.emit == [_event("pi_2")]


def test_decide_hold_stored_link_wins_over_an_answer() -> None:
    verdict = decide_hold(_hold(), linked=True, answer=Answer(None), seen=[], now=200.0)
    assert (verdict.emit, verdict.basis) == (False, "link")


def test_decide_hold_answer_decides_and_teaches_the_link() -> None:
    paid = decide_hold(_hold(), linked=False, answer=Answer("in_9"), seen=[], now=100.0)
    none = decide_hold(_hold(), linked=False, answer=Answer(None), seen=[], now=100.0)

    assert (paid.emit, paid.basis, paid.link) == (False, "lookup", Link("pi_1", "in_9"))
    assert (none.emit, none.basis) == (True, "lookup")


def test_decide_hold_matches_the_earliest_invoice_payment_within_one_window_either_side() -> None:
    seen = [
        Seen("payment:in_old", "in_old", 39.0),  # more than a window before the PI
        Seen("payment:in_b", "in_b", 150.0),
        Seen("payment:in_a", "in_a", 41.0),
        Seen("payment:in_late", "in_late", 201.0),  # after the decision
    ]

    verdict = decide_hold(_hold(), linked=False, answer=None, seen=seen, now=200.0)

    assert (verdict.emit, verdict.basis, verdict.claim) == (False, "match", "payment:in_a")
    assert verdict.link == Link("pi_1", "in_a")


def test_decide_hold_without_a_match_or_a_key_emits() -> None:
    seen = [Seen("payment:in_a", "in_a", 120.0)]

    assert decide_hold(_hold(), linked=False, answer=None, seen=[], now=200.0).emit
    keyless = decide_hold(_hold(key=None), linked=False, answer=None, seen=seen, now=200.0)
    assert (keyless.emit, keyless.basis) == (True, "no_match")


def test_next_check_at_backs_off_inside_the_window() -> None:
    hold = _hold(held_at=0.0, window_s=120.0)
    later = [
        next_check_at(Hold(1, "pi", False, [], 0.0, 120.0, checks), 10.0, lookup_failed=True)
        for checks in range(7)
    ]

    assert later == [11.0, 12.0, 14.0, 18.0, 26.0, 10.0 + LOOKUP_RETRY_MAX_S, 40.0]
    assert next_check_at(hold, 119.0, lookup_failed=True) == 120.0
    assert next_check_at(hold, 10.0, lookup_failed=False) == 120.0
