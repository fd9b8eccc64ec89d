"""What retention prunes, decided in plain Python (no I/O); each backend reads a window of
rows with the facts these functions need and deletes what they choose.

A run walks each table in insertion order from a cursor, a window of rows at a time, and stops
at the first row younger than its cutoff (rows are inserted in time order). Never pruned: a
pending delivery, a dead one not yet resolved (no later delivery of the same event to the same
subscriber was delivered, and the subscriber still exists), anything of theirs (their event,
their attempts), held PaymentIntent decisions (never read here), inbox rows awaiting a fetch
or holding the provider object of a stored event.

The PaymentIntent link and standalone marks (``pi_links``, ``pi_standalone``) decide a PI's
outcome events arriving later (dropped as the invoice's, or emitted at once): they go by the
inbox window, counted from when they were stored, like the inbox rows that make a retry a
duplicate, and never while an outcome of their PI is held.

An event pruned while its facts could still arrive again (a late provider retry inside the
inbox window, possibly a different provider event naming the same fact) is kept as a *stub*:
its id and nothing else, so the unique id still makes the fact a duplicate. The stub goes when
the inbox window has passed too.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence, Set
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "DAY_S",
    "Cutoffs",
    "DeliveryFacts",
    "EventFacts",
    "InboxFacts",
    "MarkFacts",
    "PruneCounts",
    "PruneCursor",
    "Pruned",
    "cutoffs",
    "kept_deliveries",
    "prune_attempts",
    "prune_events",
    "prune_inbox",
    "prune_marks",
    "prune_window",
]

DAY_S = 86_400.0
Table = Literal["attempts", "events", "inbox", "pi_links", "pi_standalone"]
TABLES: tuple[Table, ...] = ("attempts", "events", "inbox", "pi_links", "pi_standalone")


@dataclass(frozen=True, slots=True)
class Cutoffs:
    """Rows stored before these unix times may go (``now`` less each retention)."""

    events_before: float
    attempts_before: float
    inbox_before: float


def cutoffs(now: float, *, events_days: float, attempts_days: float, inbox_days: float) -> Cutoffs:
    return Cutoffs(now - events_days * DAY_S, now - attempts_days * DAY_S, now - inbox_days * DAY_S)


@dataclass(frozen=True, slots=True)
class PruneCursor:
    """Where a run is: the table it walks and the last row key it examined there."""

    table: Table = "attempts"
    after: int = 0


@dataclass(slots=True)
class PruneCounts:
    """Rows pruned (or, in a dry run, that would be), per kind."""

    events: int = 0
    stubs: int = 0  # events kept as their id only (see the module docstring)
    deliveries: int = 0
    attempts: int = 0
    inbox: int = 0
    pi_links: int = 0
    pi_standalone: int = 0

    def add(self, other: PruneCounts) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def total(self) -> int:
        return sum(getattr(self, name) for name in self.__slots__)


@dataclass(frozen=True, slots=True)
class DeliveryFacts:
    id: int
    event_id: str
    subscriber_id: str
    status: str


def kept_deliveries(deliveries: Iterable[DeliveryFacts], subscribers: Set[str]) -> set[int]:
    """Ids of the deliveries that keep what they refer to: pending ones, and dead ones not yet
    resolved. ``deliveries`` must hold every delivery of the events concerned."""
    rows = list(deliveries)
    delivered = {(d.event_id, d.subscriber_id, d.id) for d in rows if d.status == "delivered"}

    def resolved(d: DeliveryFacts) -> bool:
        if d.subscriber_id not in subscribers:
            return True  # nobody left to resend it to
        return any(e == d.event_id and s == d.subscriber_id and i > d.id for e, s, i in delivered)

    return {d.id for d in rows if d.status == "pending" or (d.status == "dead" and not resolved(d))}


@dataclass(frozen=True, slots=True)
class AttemptFacts:
    id: int
    started_at: float
    delivery_id: int


@dataclass(frozen=True, slots=True)
class Pruned:
    """A window's decision: row keys to delete, events to stub, and whether the walk of this
    table is done (it met a row too young); ``last``: the last key examined."""

    delete: list[int] = field(default_factory=list)
    stub: list[int] = field(default_factory=list)
    done: bool = False
    last: int = 0


def prune_attempts(
    window: Sequence[AttemptFacts], kept: Set[int], c: Cutoffs, limit: int
) -> Pruned:
    """Attempts older than the cutoff whose delivery is not kept (``kept``: delivery ids)."""
    out = Pruned(done=len(window) < limit, last=window[-1].id if window else 0)
    for a in window:
        if a.started_at >= c.attempts_before:
            return Pruned(out.delete, done=True, last=a.id)
        if a.delivery_id not in kept:
            out.delete.append(a.id)
    return out


@dataclass(frozen=True, slots=True)
class EventFacts:
    seq: int
    id: str
    stored_at: float
    stub: bool


def prune_events(
    window: Sequence[EventFacts], kept_events: Set[str], c: Cutoffs, limit: int
) -> Pruned:
    """Events older than the cutoff none of whose deliveries is kept (``kept_events``: their
    ids): deleted once the inbox window has passed, stubbed before; stubs deleted then."""
    out = Pruned(done=len(window) < limit, last=window[-1].seq if window else 0)
    for e in window:
        if e.stored_at >= c.events_before and not e.stub:
            return Pruned(out.delete, out.stub, done=True, last=e.seq)
        if e.id in kept_events:
            continue
        if e.stored_at < c.inbox_before:
            out.delete.append(e.seq)
        elif not e.stub:
            out.stub.append(e.seq)
    return out


@dataclass(frozen=True, slots=True)
class InboxFacts:
    key: int
    received_at: float
    status: str
    referenced: bool  # a stored event (not a stub) refers to its provider object


def prune_inbox(window: Sequence[InboxFacts], c: Cutoffs, limit: int) -> Pruned:
    """Inbox rows older than the inbox window that await no fetch and hold no stored event's
    object."""
    out = Pruned(done=len(window) < limit, last=window[-1].key if window else 0)
    for r in window:
        if r.received_at >= c.inbox_before:
            return Pruned(out.delete, done=True, last=r.key)
        if r.status != "pending_fetch" and not r.referenced:
            out.delete.append(r.key)
    return out


@dataclass(frozen=True, slots=True)
class MarkFacts:
    key: int
    created_at: float
    held: bool  # an outcome of its PaymentIntent is held, undecided


def prune_marks(window: Sequence[MarkFacts], c: Cutoffs, limit: int) -> Pruned:
    """PaymentIntent links or standalone marks older than the inbox window whose PI has no
    held outcome."""
    out = Pruned(done=len(window) < limit, last=window[-1].key if window else 0)
    for r in window:
        if r.created_at >= c.inbox_before:
            return Pruned(out.delete, done=True, last=r.key)
        if not r.held:
            out.delete.append(r.key)
    return out


def next_cursor(cursor: PruneCursor, pruned: Pruned) -> PruneCursor | None:
    """The cursor after a window: the same table further on, the next table, or None (done)."""
    if not pruned.done:
        return PruneCursor(cursor.table, pruned.last)
    i = TABLES.index(cursor.table) + 1
    return PruneCursor(TABLES[i]) if i < len(TABLES) else None


# -- one window of a run, as a conversation with the database ------------------------------------
# The walk is a generator (no I/O): it yields each statement it needs by name with its
# parameters, and is sent back the rows (reads) or the row count (writes). Each backend runs it
# inside one transaction with its own SQL for each name (bridge.store.sqlite.retention,
# bridge.store.postgres.retention), so both prune by the same decisions.


@dataclass(frozen=True, slots=True)
class Step:
    """A statement to run: ``op`` names it; ``read``: it returns rows, else a row count."""

    op: str
    params: tuple[object, ...]
    read: bool = True


Rows = list[tuple[Any, ...]]
Walk = Generator[Step, Any, tuple[PruneCounts, PruneCursor | None]]


def prune_window(c: Cutoffs, cursor: PruneCursor, limit: int, dry_run: bool) -> Walk:
    """Prune one window of ``limit`` rows of ``cursor.table``; returns what was pruned and the
    cursor of the next window (None: the run is over)."""
    rows: Rows = yield Step("subscribers", ())
    subscribers = {str(r[0]) for r in rows}
    if cursor.table == "attempts":
        counts, pruned = yield from _attempts(c, cursor.after, limit, dry_run, subscribers)
    elif cursor.table == "events":
        counts, pruned = yield from _events(c, cursor.after, limit, dry_run, subscribers)
    elif cursor.table == "inbox":
        rows = yield Step("inbox_window", (cursor.after, limit))
        window = [InboxFacts(int(r[0]), float(r[1]), str(r[2]), bool(r[3])) for r in rows]
        pruned = prune_inbox(window, c, limit)
        counts = PruneCounts(inbox=len(pruned.delete))
        if pruned.delete and not dry_run:
            yield Step("delete_inbox", (pruned.delete,), read=False)
    else:
        counts, pruned = yield from _marks(cursor.table, c, cursor.after, limit, dry_run)
    return counts, next_cursor(cursor, pruned)


def _marks(
    table: Table, c: Cutoffs, after: int, limit: int, dry_run: bool
) -> Generator[Step, Any, tuple[PruneCounts, Pruned]]:
    rows: Rows = yield Step(f"{table}_window", (after, limit))
    pruned = prune_marks([MarkFacts(int(r[0]), float(r[1]), bool(r[2])) for r in rows], c, limit)
    n = len(pruned.delete)
    if pruned.delete and not dry_run:
        # The delete checks for a hold again: one made since the read keeps its row.
        n = yield Step(f"delete_{table}", (pruned.delete,), read=False)
    counts = PruneCounts()
    setattr(counts, table, n)
    return counts, pruned


def _delivery_facts(rows: Rows) -> list[DeliveryFacts]:
    return [DeliveryFacts(int(r[0]), str(r[1]), str(r[2]), str(r[3])) for r in rows]


def _attempts(
    c: Cutoffs, after: int, limit: int, dry_run: bool, subscribers: Set[str]
) -> Generator[Step, Any, tuple[PruneCounts, Pruned]]:
    rows: Rows = yield Step("attempts_window", (after, limit))
    window = [AttemptFacts(int(r[0]), float(r[1]), int(r[2])) for r in rows]
    rows = yield Step("deliveries_beside", (sorted({a.delivery_id for a in window}),))
    kept = kept_deliveries(_delivery_facts(rows), subscribers)
    pruned = prune_attempts(window, kept, c, limit)
    if pruned.delete and not dry_run:
        yield Step("delete_attempts", (pruned.delete,), read=False)
    return PruneCounts(attempts=len(pruned.delete)), pruned


def _events(
    c: Cutoffs, after: int, limit: int, dry_run: bool, subscribers: Set[str]
) -> Generator[Step, Any, tuple[PruneCounts, Pruned]]:
    rows: Rows = yield Step("events_window", (after, limit))
    window = [EventFacts(int(r[0]), str(r[1]), float(r[2]), bool(r[3])) for r in rows]
    rows = yield Step("deliveries_of_events", ([e.id for e in window],))
    deliveries = _delivery_facts(rows)
    kept = kept_deliveries(deliveries, subscribers)
    kept_events = {d.event_id for d in deliveries if d.id in kept}
    pruned = prune_events(window, kept_events, c, limit)
    gone = set(pruned.delete) | set(pruned.stub)
    victims = [e.id for e in window if e.seq in gone]
    stubs = sum(1 for e in window if e.seq in pruned.delete and e.stub)
    counts = PruneCounts(
        events=len(pruned.delete) - stubs,
        stubs=len(pruned.stub),
        deliveries=sum(1 for d in deliveries if d.event_id in victims),
    )
    if not victims:
        return counts, pruned
    if dry_run:
        rows = yield Step("count_attempts_of_events", (victims,))
        counts.attempts = int(rows[0][0])
        return counts, pruned
    counts.attempts = yield Step("delete_attempts_of_events", (victims,), read=False)
    yield Step("delete_deliveries_of_events", (victims,), read=False)
    if pruned.delete:
        yield Step("delete_events", (pruned.delete,), read=False)
    if pruned.stub:
        yield Step("stub_events", (pruned.stub,), read=False)
    return counts, pruned
