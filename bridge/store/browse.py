"""The console's read queries, decided once for both backends: the WHERE clause of an event
query, keyset paging, rows to summaries, hourly counts to buckets. The backends differ only
in their placeholder style (``?`` or ``$n``) and in bucket arithmetic.

Keyset paging: a page is ``seq < before ORDER BY seq DESC LIMIT n + 1`` (a time range alone:
along ``(created, seq)``); the extra row only says whether an older page exists. No page counts
rows, so a page costs the same on an empty store and on one with millions of events (each
filter column has an ``(column, seq)`` index).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from bridge.store.base import ActivityBucket, EventQuery, EventSlice, EventSummary

__all__ = [
    "SUMMARY_COLUMNS",
    "activity_buckets",
    "event_page_sql",
    "event_slice",
]

SUMMARY_COLUMNS = (
    "seq, id, type, source, source_event_id, created, stored_at, customer, subscription, invoice"
)
Mark = Callable[[int], str]  # placeholder for the n-th (1-based) parameter


def _by_time(query: EventQuery) -> bool:
    """Whether a page is read along ``(created, seq)``: a time range with no filter that has
    an index of its own (type, customer, subscription, invoice)."""
    timed = query.created_from is not None or query.created_to is not None
    keyed = (query.type, query.customer, query.subscription, query.invoice)
    return timed and all(v is None for v in keyed)


def event_page_sql(
    query: EventQuery, before: int | None, limit: int, mark: Mark
) -> tuple[str, list[Any]]:
    """The statement of one page of events matching ``query`` and its parameters.

    Newest first by ``seq``; a time range alone is read newest first by ``(created, seq)`` on
    its index instead, so a page of last month's events does not scan this month's. Either way
    the cursor is the last row's ``seq``."""
    conds: list[str] = []
    args: list[Any] = []

    def add(sql: str, *values: Any) -> None:
        marks = []
        for value in values:
            args.append(value)
            marks.append(mark(len(args)))
        conds.append(sql.format(*marks))

    for column in ("type", "source", "customer", "subscription", "invoice"):
        value = getattr(query, column)
        if value is not None:
            add(f"{column} = {{}}", value)
    if query.created_from is not None:
        add("created >= {}", query.created_from)
    if query.created_to is not None:
        add("created < {}", query.created_to)
    by_time = _by_time(query)
    if before is not None and by_time:
        add("(created, seq) < ((SELECT created FROM events WHERE seq = {}), {})", before, before)
    elif before is not None:
        add("seq < {}", before)
    where = (" WHERE " + " AND ".join(conds)) if conds else ""
    order = "created DESC, seq DESC" if by_time else "seq DESC"
    args.append(limit + 1)
    sql = f"SELECT {SUMMARY_COLUMNS} FROM events{where} ORDER BY {order} LIMIT {mark(len(args))}"
    return sql, args


def event_slice(rows: Sequence[Sequence[Any]], limit: int) -> EventSlice:
    """A page from up to ``limit + 1`` rows of :func:`event_page_sql`."""
    items = [
        EventSummary(
            seq=int(r[0]),
            id=r[1],
            type=r[2],
            source=r[3],
            source_event_id=r[4],
            created=int(r[5]),
            stored_at=float(r[6]),
            customer=r[7],
            subscription=r[8],
            invoice=r[9],
        )
        for r in rows[:limit]
    ]
    more = len(rows) > limit and bool(items)
    return EventSlice(items, items[-1].seq if more else None)


def activity_buckets(
    since: float,
    bucket_s: float,
    buckets: int,
    events: Iterable[tuple[int, int]],
    failed: Iterable[tuple[int, int]],
) -> list[ActivityBucket]:
    """``buckets`` buckets from ``since`` out of ``(bucket index, count)`` rows; indexes
    outside ``[0, buckets)`` are ignored, missing ones count 0."""
    ev = [0] * buckets
    fa = [0] * buckets
    for counts, rows in ((ev, events), (fa, failed)):
        for index, count in rows:
            if 0 <= int(index) < buckets:
                counts[int(index)] += int(count)
    return [ActivityBucket(since + i * bucket_s, ev[i], fa[i]) for i in range(buckets)]
