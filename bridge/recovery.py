"""What ``recover`` does for one endpoint: resend everything that failed since a time.

A delivery *failed* when it is dead, or still pending with a failed last attempt and waiting
for its next one (failing: not held by an instance sending it right now); it failed *since* a
time when its last outcome was recorded at or after it. Dead
deliveries get a fresh delivery each (a full retry schedule, the old row and its attempts
kept as history), unless a later delivery of the same event to the same endpoint exists (a
resend or an earlier recovery already took care of it). Failing ones get their next attempt
moved to now. The decision (:func:`plan_recovery`) is pure; the stores select the candidates
and apply the plan in one transaction; :func:`bridge.endpoints.recover_endpoint` is the
operation the admin API and the CLI share."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "FailedDelivery",
    "RecoveryPlan",
    "RecoveryResult",
    "plan_recovery",
    "recovery_json",
]


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    """A candidate for recovery, as a store reads it."""

    id: int
    event_id: str
    status: Literal["pending", "dead"]
    attempts: int
    updated_at: float
    superseded: bool  # a later delivery of the same event to the same subscriber exists
    last_attempt_failed: bool = True
    leased: bool = False  # an instance holds it (its attempt may be in flight)


@dataclass(frozen=True, slots=True)
class RecoveryPlan:
    """Which deliveries to resend (dead) and which to retry now (failing)."""

    resend: tuple[FailedDelivery, ...] = ()
    retry_now: tuple[FailedDelivery, ...] = ()

    @property
    def count(self) -> int:
        return len(self.resend) + len(self.retry_now)


@dataclass(frozen=True, slots=True)
class RecoveryResult:
    """What a recovery did (or, with ``dry_run``, would do)."""

    endpoint_id: str
    since: float
    dead: int  # dead deliveries resent as fresh deliveries
    failing: int  # pending failing deliveries whose next attempt moved to now
    dry_run: bool
    endpoint_status: Literal["enabled", "disabled"] = "enabled"

    @property
    def count(self) -> int:
        return self.dead + self.failing


def plan_recovery(candidates: Iterable[FailedDelivery], *, since: float) -> RecoveryPlan:
    """The deliveries among ``candidates`` to resend and to retry now (module docstring)."""
    resend: list[FailedDelivery] = []
    retry_now: list[FailedDelivery] = []
    for d in candidates:
        if d.updated_at < since or d.attempts == 0:
            continue
        if d.status == "dead" and not d.superseded:
            resend.append(d)
        elif d.status == "pending" and d.last_attempt_failed and not d.leased:
            retry_now.append(d)
    return RecoveryPlan(tuple(resend), tuple(retry_now))


def recovery_json(r: RecoveryResult) -> dict[str, Any]:
    """The answer of ``POST /api/webhook-endpoints/{id}/recover`` (and ``recover --json``)."""
    return {
        "object": "recovery",
        "endpoint_id": r.endpoint_id,
        "since": r.since,
        "dead": r.dead,
        "failing": r.failing,
        "count": r.count,
        "dry_run": r.dry_run,
        "endpoint_status": r.endpoint_status,
    }
