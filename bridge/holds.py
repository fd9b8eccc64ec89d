"""The PaymentIntent rule as pure decisions: what one ingest stores, and what a held outcome
becomes. Nothing here reads a clock or does I/O: a store reads what it knows into
:class:`Known` (or a hold's candidates into :class:`Seen`), calls these functions inside its
transaction, and persists what they decided; the same code thus decides for every backend.

The rule: a PaymentIntent that pays an invoice is covered by the invoice's events. A link
(stored, or a look-up's answer) drops its held outcome; a PI known to pay no invoice emits it
at once; otherwise it is held for the correlation window. When the window ends with neither a
link nor an answer, an unlinked invoice payment (or declined attempt) of the same customer,
amount and currency seen within the window, before or after the PI, is taken to be the one the
PI paid: the PI is dropped, and that invoice payment cannot account for a second PI.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from bridge.events import Event
from bridge.normalized import Deferred, InvoicePayment, Link, Normalized, PaymentKey

__all__ = [
    "Answer",
    "Basis",
    "HeldRow",
    "Hold",
    "IngestPlan",
    "Known",
    "NewHold",
    "Seen",
    "Verdict",
    "answered_payment_intents",
    "decide_hold",
    "next_check_at",
    "payment_intents",
    "plan_ingest",
]

# Look-ups that fail are retried after 1, 2, 4 … seconds, at most this far apart, until the
# window ends (then the stored events decide).
LOOKUP_RETRY_MAX_S = 30.0


@dataclass(frozen=True, slots=True)
class HeldRow:
    """A stored hold as an ingest transaction reads it."""

    id: int
    payment_intent: str
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class Known:
    """What the store already holds about the PaymentIntents one ingest names."""

    linked: frozenset[str] = frozenset()
    standalone: frozenset[str] = frozenset()
    held: tuple[HeldRow, ...] = ()


@dataclass(frozen=True, slots=True)
class NewHold:
    """A :class:`Deferred` to store as held, and when to look at it again."""

    deferred: Deferred
    held_at: float
    decide_at: float  # the end of the correlation window
    next_check_at: float  # at once when a look-up can decide, else the window's end


@dataclass(slots=True)
class IngestPlan:
    """What one ingest writes besides its inbox row: the store persists exactly this."""

    links: list[Link] = field(default_factory=list)
    standalone: list[str] = field(default_factory=list)
    drop: list[int] = field(default_factory=list)  # held rows a link answers
    release: list[int] = field(default_factory=list)  # held rows whose events are in ``emit``
    holds: list[NewHold] = field(default_factory=list)
    invoice_payments: list[InvoicePayment] = field(default_factory=list)
    emit: list[Event] = field(default_factory=list)
    dropped: int = 0  # decisions dropped (held rows and new ones)


def payment_intents(n: Normalized) -> list[str]:
    """The PaymentIntents whose stored state :func:`plan_ingest` needs (and a store locks)."""
    pis = [link.payment_intent for link in n.links]
    pis += n.standalone_payment_intents
    pis += [d.payment_intent for d in n.deferred]
    return list(dict.fromkeys(pis))


def answered_payment_intents(n: Normalized) -> list[str]:
    """The PaymentIntents whose rows already held ``n`` decides (by a link or a standalone
    mark): :func:`plan_ingest` needs those rows in :attr:`Known.held`."""
    pis = [link.payment_intent for link in n.links] + n.standalone_payment_intents
    return list(dict.fromkeys(pis))


def plan_ingest(
    n: Normalized, known: Known, *, now: float, window_s: float, lookups: bool
) -> IngestPlan:
    """Decide what storing ``n`` writes, given what the store ``known``s. ``lookups``: a
    look-up can decide held outcomes at once (they are due now, not at the window's end)."""
    plan = IngestPlan(
        links=list(n.links),
        standalone=list(n.standalone_payment_intents),
        invoice_payments=list(n.invoice_payments),
        emit=list(n.events),
    )
    linked = known.linked | {link.payment_intent for link in n.links}
    standalone = known.standalone | set(n.standalone_payment_intents)
    for row in known.held:
        if row.payment_intent in linked:
            plan.drop.append(row.id)
        elif row.payment_intent in n.standalone_payment_intents:
            plan.release.append(row.id)
            plan.emit.extend(row.events)
    plan.dropped = len(plan.drop)
    for d in n.deferred:
        if d.payment_intent in linked:
            plan.dropped += 1
        elif window_s <= 0 or d.payment_intent in standalone:
            plan.emit.extend(d.events)
        else:
            decide_at = now + window_s
            plan.holds.append(NewHold(d, now, decide_at, now if lookups else decide_at))
    return plan


@dataclass(frozen=True, slots=True)
class Hold:
    """A held PaymentIntent outcome, leased to the caller by ``Store.claim_holds``."""

    id: int
    payment_intent: str
    livemode: bool
    events: list[Event]
    held_at: float
    decide_at: float
    checks: int = 0  # look-ups tried so far
    key: PaymentKey | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """What asking the provider told: the invoice the PI pays, or None when it pays none."""

    invoice: str | None


@dataclass(frozen=True, slots=True)
class Seen:
    """A stored invoice payment with a hold's key, not yet linked to any PaymentIntent."""

    ref: str
    invoice: str
    seen_at: float


Basis = Literal["link", "lookup", "match", "no_match"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """A held outcome decided: emit its events or drop them, and why."""

    emit: bool
    basis: Basis
    link: Link | None = None  # learned by this decision: store it
    claim: str | None = None  # the ``Seen.ref`` a match used up


def decide_hold(
    hold: Hold, *, linked: bool, answer: Answer | None, seen: Iterable[Seen], now: float
) -> Verdict:
    """Decide ``hold``: a stored link wins, then a look-up's answer; with neither, the
    earliest matching invoice payment seen from one window before the PI until ``now``."""
    if linked:
        return Verdict(False, "link")
    if answer is not None:
        if answer.invoice:
            return Verdict(False, "lookup", Link(hold.payment_intent, answer.invoice))
        return Verdict(True, "lookup")
    earliest = hold.held_at - (hold.decide_at - hold.held_at)
    window = [s for s in seen if earliest <= s.seen_at <= now]
    if hold.key is None or not window:
        return Verdict(True, "no_match")
    first = min(window, key=lambda s: (s.seen_at, s.ref))
    return Verdict(False, "match", Link(hold.payment_intent, first.invoice), first.ref)


def next_check_at(hold: Hold, now: float, *, lookup_failed: bool) -> float:
    """When to look at an undecided ``hold`` again: after a failed look-up, with backoff
    inside the window; otherwise at the window's end."""
    if not lookup_failed:
        return hold.decide_at
    delay = min(2.0**hold.checks, LOOKUP_RETRY_MAX_S)
    return min(now + delay, hold.decide_at)
