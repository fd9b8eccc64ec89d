"""SQL text and row mapping of the operator's queries (listing deliveries, recovery
candidates, per-subscriber totals, jobs), shared by both backends: the statements are the
same; ``{}`` stands for the backend's placeholder (``?`` on SQLite, ``$n`` on PostgreSQL),
filled in by :func:`render`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bridge.recovery import FailedDelivery
from bridge.store.base import (
    DeliveryRecord,
    DeliveryStatus,
    EndpointDeliveryStats,
    KeysetPage,
    Subscriber,
)

__all__ = [
    "ACQUIRE_JOB",
    "INSERT_JOB",
    "RECOVERY_CANDIDATES",
    "RELEASE_JOB",
    "SAVE_JOB",
    "STATS",
    "delivery_list",
    "failed_from_row",
    "keyset_page",
    "oldest_pending_ids",
    "render",
    "stats_from_rows",
]

_LIST = (
    "SELECT d.id, d.event_id, e.type, d.subscriber_id, d.status, d.attempts, d.next_attempt_at,"
    " d.created_at, d.updated_at, a.status_code, a.error"
    " FROM deliveries d LEFT JOIN events e ON e.id = d.event_id"
    " LEFT JOIN attempts a ON a.id = (SELECT MAX(x.id) FROM attempts x WHERE x.delivery_id = d.id)"
)
# Failed deliveries of one endpoint since a time: whether a later delivery of the same event
# to it exists (then a dead one was already resent), whether its last attempt failed, and
# whether an instance holds it now (params: endpoint, since, now).
RECOVERY_CANDIDATES = (
    "SELECT d.id, d.event_id, d.status, d.attempts, d.updated_at,"
    " EXISTS (SELECT 1 FROM deliveries l WHERE l.event_id = d.event_id"
    " AND l.subscriber_id = d.subscriber_id AND l.id > d.id),"
    " COALESCE(a.outcome = 'failed', FALSE), COALESCE(d.lease_until >= {}, FALSE)"
    " FROM deliveries d"
    " LEFT JOIN attempts a ON a.id = (SELECT MAX(x.id) FROM attempts x WHERE x.delivery_id = d.id)"
    " WHERE d.subscriber_id = {} AND d.status IN ('pending', 'dead')"
    " AND d.attempts > 0 AND d.updated_at >= {} ORDER BY d.id"
)
# Pending deliveries, and dead ones not yet resolved (no later delivery of the same event to
# the same subscriber was delivered: a resend or a recovery took care of it), per subscriber.
STATS = (
    "SELECT subscriber_id, status, COUNT(*), MIN(id) FROM deliveries"
    " WHERE status = 'pending' GROUP BY subscriber_id, status"
    " UNION ALL SELECT d.subscriber_id, d.status, COUNT(*), MIN(d.id) FROM deliveries d"
    " WHERE d.status = 'dead' AND NOT EXISTS (SELECT 1 FROM deliveries l"
    " WHERE l.event_id = d.event_id AND l.subscriber_id = d.subscriber_id AND l.id > d.id"
    " AND l.status = 'delivered') GROUP BY d.subscriber_id, d.status"
)
INSERT_JOB = "INSERT INTO jobs (name, updated_at) VALUES ({}, {}) ON CONFLICT (name) DO NOTHING"
ACQUIRE_JOB = (
    "UPDATE jobs SET lease_owner = {}, lease_until = {}, updated_at = {} WHERE name = {}"
    " AND (lease_owner IS NULL OR lease_owner = {} OR lease_until < {}) RETURNING checkpoint"
)
SAVE_JOB = (
    "UPDATE jobs SET checkpoint = COALESCE({}, checkpoint), lease_until = {}, updated_at = {}"
    " WHERE name = {} AND lease_owner = {} RETURNING 1"
)
RELEASE_JOB = (
    "UPDATE jobs SET lease_owner = NULL, lease_until = NULL WHERE name = {} AND lease_owner = {}"
)


def render(sql: str, mark: Callable[[int], str]) -> str:
    """``sql`` with its n-th ``{}`` (from 1) replaced by ``mark(n)``."""
    parts = sql.split("{}")
    out = [parts[0]]
    for n, part in enumerate(parts[1:], start=1):
        out.append(mark(n))
        out.append(part)
    return "".join(out)


def delivery_list(
    status: DeliveryStatus | None, subscriber_id: str | None, before_id: int | None, limit: int
) -> tuple[str, list[Any]]:
    """The listing statement (one row more than ``limit``: is there a next page?) and its
    arguments."""
    conds: list[str] = []
    args: list[Any] = []
    for cond, value in (
        ("d.status = {}", status),
        ("d.subscriber_id = {}", subscriber_id),
        ("d.id < {}", before_id),
    ):
        if value is not None:
            conds.append(cond)
            args.append(value)
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    return f"{_LIST}{where} ORDER BY d.id DESC LIMIT {{}}", [*args, limit + 1]


def keyset_page(rows: Sequence[Sequence[Any]], limit: int) -> KeysetPage[DeliveryRecord]:
    """Rows of :func:`delivery_list` as a page; the extra row only says there is more."""
    records = [_record(r) for r in rows[:limit]]
    more = len(rows) > limit and records
    return KeysetPage(records, records[-1].id if more else None)


def _record(r: Sequence[Any]) -> DeliveryRecord:
    return DeliveryRecord(
        id=int(r[0]),
        event_id=r[1],
        event_type=r[2],
        subscriber_id=r[3],
        status=r[4],
        attempts=int(r[5]),
        next_attempt_at=float(r[6]),
        created_at=float(r[7]),
        updated_at=float(r[8]),
        last_status_code=r[9],
        last_error=r[10],
    )


def failed_from_row(r: Sequence[Any]) -> FailedDelivery:
    """A row of :data:`RECOVERY_CANDIDATES`."""
    return FailedDelivery(
        int(r[0]), r[1], r[2], int(r[3]), float(r[4]), bool(r[5]), bool(r[6]), bool(r[7])
    )


def stats_from_rows(
    subscribers: Sequence[Subscriber],
    grouped: Sequence[Sequence[Any]],
    created: Mapping[int, float],
) -> list[EndpointDeliveryStats]:
    """Per subscriber, from :data:`STATS` rows and the creation times of the oldest pending
    deliveries (by id). Deliveries of deleted subscribers are left out."""
    counts: dict[tuple[str, str], tuple[int, int]] = {
        (r[0], r[1]): (int(r[2]), int(r[3])) for r in grouped
    }
    out: list[EndpointDeliveryStats] = []
    for s in sorted(subscribers, key=lambda s: s.id):
        pending, oldest_id = counts.get((s.id, "pending"), (0, 0))
        dead, _ = counts.get((s.id, "dead"), (0, 0))
        out.append(
            EndpointDeliveryStats(
                subscriber_id=s.id,
                kind=s.kind,
                status=s.status,
                failing=s.failing_since is not None,
                pending=pending,
                oldest_pending_created_at=created.get(oldest_id) if pending else None,
                dead=dead,
            )
        )
    return out


def oldest_pending_ids(grouped: Sequence[Sequence[Any]]) -> list[int]:
    """The oldest pending delivery id of each subscriber, from :data:`STATS` rows."""
    return [int(r[3]) for r in grouped if r[1] == "pending"]
