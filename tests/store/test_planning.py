"""bridge/store/planning.py: what the stores write, decided without a database."""

from __future__ import annotations

from bridge.store.base import DeliveryOutcome, Subscriber
from bridge.store.planning import (
    RESPONSE_BODY_MAX,
    StreakUpdate,
    attempt_row,
    claimable,
    resend_targets,
    streak_update,
    subscriber_page,
)
from tests.store.store_factories import event

FAILED = DeliveryOutcome(False, 500, next_attempt_at=100.0)
DELIVERED = DeliveryOutcome(True, 200)


def _sub(sid: str = "we_1", **kw: object) -> Subscriber:
    kind = "handler" if sid.startswith("handler:") else "endpoint"
    return Subscriber(id=sid, kind=kind, enabled_events=["*"], **kw)  # type: ignore[arg-type]


def test_a_failure_starts_a_streak_and_a_long_one_disables_the_endpoint() -> None:
    assert streak_update(_sub(), FAILED, 50.0, 60.0) == StreakUpdate(50.0)
    assert streak_update(_sub(failing_since=50.0), FAILED, 100.0, 60.0) is None
    assert streak_update(_sub(failing_since=30.0), FAILED, 100.0, 60.0) == StreakUpdate(
        30.0, "failing for 60s straight"
    )
    # a handler or an endpoint already disabled keeps its status
    assert streak_update(_sub("handler:h", failing_since=30.0), FAILED, 100.0, 60.0) is None
    disabled = _sub(failing_since=30.0, status="disabled")
    assert streak_update(disabled, FAILED, 100.0, 60.0) is None


def test_a_success_ends_the_streak_and_an_outcome_may_disable_at_once() -> None:
    assert streak_update(_sub(), DELIVERED, 10.0, 60.0) is None
    assert streak_update(_sub(failing_since=5.0), DELIVERED, 10.0, 60.0) == StreakUpdate(None)
    gone = DeliveryOutcome(False, 410, disable_endpoint="endpoint answered 410")
    assert streak_update(_sub(), gone, 10.0, 60.0) == StreakUpdate(None, "endpoint answered 410")


def test_an_attempt_row_keeps_a_capped_answer() -> None:
    row = attempt_row(DeliveryOutcome(True, 200, response_body="x" * 5000, duration_ms=3.0))
    assert (row.outcome, row.status_code, row.duration_ms) == ("succeeded", 200, 3.0)
    assert row.response_body == "x" * RESPONSE_BODY_MAX
    assert attempt_row(FAILED).outcome == "failed" and attempt_row(FAILED).response_body is None


def test_claims_and_resends_choose_their_subscribers() -> None:
    subs = [_sub("we_1"), _sub("we_off", status="disabled"), _sub("handler:a"), _sub("handler:b")]
    assert claimable(subs, ["a"], ["we_x"]) == ["we_1", "handler:a"]
    assert claimable(subs, [], ["we_1"]) == []
    ev = event("cs_1")
    assert resend_targets(subs, ev, None) == ["we_1"]
    assert resend_targets(subs, ev, "handler:b") == ["handler:b"]


def test_a_subscriber_page_is_newest_first_and_filtered() -> None:
    subs = [_sub("we_a", created_at=1.0), _sub("we_b", created_at=2.0, livemode=True)]
    page = subscriber_page(subs, None, None, 0, 1)
    assert (page.count, [s.id for s in page.items]) == (2, ["we_b"])
    assert [s.id for s in subscriber_page(subs, "endpoint", False, 0, 10).items] == ["we_a"]
    assert subscriber_page(subs, "handler", None, 0, 10).count == 0
