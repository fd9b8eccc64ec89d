"""What recovery resends, decided without a store."""

from __future__ import annotations

from bridge.recovery import FailedDelivery, RecoveryResult, plan_recovery

SINCE = 1000.0


def _d(id: int, status: str = "dead", **kw: object) -> FailedDelivery:
    fields: dict[str, object] = {"attempts": 3, "updated_at": SINCE + 1, "superseded": False}
    fields.update(kw)
    return FailedDelivery(id, f"evt_{id}", status, **fields)  # type: ignore[arg-type]


def test_recovery_resends_dead_and_retries_failing() -> None:
    plan = plan_recovery([_d(1), _d(2, "pending")], since=SINCE)
    assert [d.id for d in plan.resend] == [1] and [d.id for d in plan.retry_now] == [2]
    assert plan.count == 2


def test_recovery_skips_what_needs_nothing() -> None:
    plan = plan_recovery(
        [
            _d(1, superseded=True),  # resent already
            _d(2, updated_at=SINCE - 1),  # failed before since
            _d(3, "pending", attempts=0),  # never attempted
            _d(4, "pending", leased=True),  # being sent right now
            _d(5, "pending", last_attempt_failed=False),  # first attempt still open
            _d(6, "pending", superseded=True),  # still owed: superseded matters for dead only
        ],
        since=SINCE,
    )
    assert [d.id for d in plan.resend] == [] and [d.id for d in plan.retry_now] == [6]


def test_recovery_result_count() -> None:
    assert RecoveryResult("we_1", SINCE, 2, 3, dry_run=True).count == 5
