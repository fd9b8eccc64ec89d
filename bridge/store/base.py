"""The store contract. Every implementation gives the same semantics:

- :meth:`Store.ingest` is **one transaction**: the inbox row (unique on provider + provider
  event id), the canonical events (unique on ``dedupe_key``), what the PaymentIntent rule
  decided (:func:`bridge.holds.plan_ingest`: links, held outcomes, invoice payments), and one
  delivery row per (new event, matching subscriber). It returns only after commit; on failure
  it raises :class:`bridge.errors.StoreError` and nothing is kept.
- Held outcomes are decided by :func:`bridge.holds.decide_hold` inside
  :meth:`Store.resolve_hold`'s transaction, so a link stored meanwhile always wins.
- Deliveries are claimed with a lease (``lease_owner``, ``lease_until``); a claim whose owner
  died is taken over once the lease expires. Deliveries created by :meth:`ingest` come back
  already leased to the ingesting instance, so it can send them without another round trip.
- Subscribers are webhook endpoints (``we_…``) and durable bus handlers (``handler:<name>``).

All times are unix seconds (float) passed in by the caller: the store has no clock.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from bridge.events import Event
from bridge.holds import Answer, Hold, Verdict
from bridge.normalized import Normalized
from bridge.recovery import RecoveryResult
from bridge.store.retention import Cutoffs, PruneCounts, PruneCursor

__all__ = [
    "ActivityBucket",
    "AttemptRecord",
    "Delivery",
    "DeliveryOutcome",
    "DeliveryRecord",
    "EndpointDeliveryStats",
    "EventQuery",
    "EventSlice",
    "EventSummary",
    "Hold",
    "InboxRecord",
    "IngestResult",
    "JobLease",
    "KeysetPage",
    "Page",
    "Store",
    "StoreOverview",
    "Subscriber",
]

T = TypeVar("T")
SubscriberKind = Literal["endpoint", "handler"]
DeliveryStatus = Literal["pending", "delivered", "dead"]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list and the total count (the API's ``{"count", "list"}``)."""

    count: int
    items: list[T]


@dataclass(frozen=True, slots=True)
class InboxRecord:
    """One accepted provider request."""

    provider: str
    provider_event_id: str
    type: str
    received_at: float
    payload: bytes
    # orjson bytes of ``payload``'s data.object when that is exactly what canonical events of
    # this request embed (see bridge.store.bodies.stored_body): stores then keep it once.
    object_json: bytes | None = None


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A webhook endpoint or a durable bus handler."""

    id: str
    kind: SubscriberKind
    enabled_events: list[str]
    status: Literal["enabled", "disabled"] = "enabled"
    url: str | None = None
    signature: Literal["standard", "stripe", "blocklet"] = "standard"
    secret: str | None = None
    previous_secret: str | None = None
    previous_secret_expires_at: float | None = None
    description: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_via: Literal["api", "config", "code"] = "api"
    livemode: bool = False
    api_version: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    failing_since: float | None = None
    disabled_reason: str | None = None

    def signing_secrets(self, now: float) -> list[str]:
        """The secrets to sign with now: the current one, plus the previous one during rotation."""
        out = [self.secret] if self.secret else []
        if (
            self.previous_secret
            and self.previous_secret_expires_at is not None
            and now < self.previous_secret_expires_at
        ):
            out.append(self.previous_secret)
        return out

    def __repr__(self) -> str:  # never show secrets
        return f"Subscriber(id={self.id!r}, kind={self.kind!r}, status={self.status!r})"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event owed to one subscriber; ``attempts`` made so far."""

    id: int
    event: Event
    subscriber_id: str
    attempts: int
    next_attempt_at: float
    status: DeliveryStatus = "pending"
    created_at: float = 0.0
    # Set on endpoint deliveries that :meth:`Store.ingest` returns leased: their first attempt
    # is already recorded (in the ingest transaction), so it can be sent without another commit.
    attempt_id: int | None = None


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one :meth:`Store.ingest` committed."""

    duplicate: bool
    events: list[Event] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    held: int = 0  # PaymentIntent decisions now waiting for the correlation window
    dropped: int = 0  # held or new PI decisions dropped because the PI pays an invoice
    verdict: Verdict | None = None  # set by Store.resolve_hold: what was decided, and why


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """The result of one attempt, decided by the dispatcher (``bridge.retry.classify``)."""

    delivered: bool
    status_code: int | None = None
    error: str | None = None
    response_body: str | None = None
    duration_ms: float = 0.0
    next_attempt_at: float | None = None  # None and not delivered → dead
    disable_endpoint: str | None = None  # a reason: disable the subscriber now


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One delivery attempt as the API shows it."""

    id: int
    delivery_id: int
    event_id: str
    subscriber_id: str
    attempt: int
    started_at: float
    finished_at: float | None
    status: Literal["pending", "succeeded", "failed"]
    status_code: int | None
    duration_ms: float | None
    error: str | None
    response_body: str | None
    delivery_status: DeliveryStatus = "pending"


@dataclass(frozen=True, slots=True)
class KeysetPage(Generic[T]):
    """One page of a list read by key: ``next_cursor`` continues it (None: that was all)."""

    items: list[T]
    next_cursor: int | None


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One delivery as an operator lists it, with its last attempt's answer."""

    id: int
    event_id: str
    event_type: str | None  # None once the event itself is gone
    subscriber_id: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: float
    created_at: float
    updated_at: float
    last_status_code: int | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class EndpointDeliveryStats:
    """What one subscriber is owed, for metrics: pending deliveries (and since when the oldest
    waits) and dead ones not yet resolved (no later delivery of their event to it delivered)."""

    subscriber_id: str
    kind: SubscriberKind
    status: Literal["enabled", "disabled"]
    failing: bool
    pending: int
    oldest_pending_created_at: float | None
    dead: int


@dataclass(frozen=True, slots=True)
class JobLease:
    """A named job (``reconcile:stripe``) held by ``owner`` until ``lease_until``, with the
    checkpoint its last holder saved."""

    name: str
    owner: str
    lease_until: float
    checkpoint: str | None


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Filters of :meth:`Store.browse_events`; ``None`` matches anything. Times are the
    events' ``created`` (unix s), ``created_from`` inclusive, ``created_to`` exclusive."""

    type: str | None = None
    source: str | None = None
    created_from: int | None = None
    created_to: int | None = None
    customer: str | None = None
    subscription: str | None = None
    invoice: str | None = None


@dataclass(frozen=True, slots=True)
class EventSummary:
    """One row of an event list: what identifies and finds an event, not its body."""

    seq: int
    id: str
    type: str
    source: str
    source_event_id: str
    created: int
    stored_at: float
    customer: str | None
    subscription: str | None
    invoice: str | None


@dataclass(frozen=True, slots=True)
class EventSlice:
    """One keyset page of events, newest first; ``next_before`` continues it (None: the end)."""

    items: list[EventSummary]
    next_before: int | None


@dataclass(frozen=True, slots=True)
class StoreOverview:
    """The console's headline counts."""

    events_since: int  # events created since the ``since`` given
    pending: int
    dead: int
    oldest_pending_at: float | None  # created_at of the oldest pending delivery


@dataclass(frozen=True, slots=True)
class ActivityBucket:
    """Events created and attempts failed in ``[start, start + bucket_s)``."""

    start: float
    events: int
    failed_attempts: int


class Store(abc.ABC):
    """The persistence contract; see the module docstring for the semantics.

    Every method raises :class:`bridge.errors.StoreError` when the database cannot answer.
    """

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending migrations (safe when several instances start at once)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; idempotent."""

    # -- ingress ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def ingest(
        self,
        record: InboxRecord,
        normalized: Normalized,
        *,
        now: float,
        correlation_window_s: float,
        owner: str,
        lease_s: float,
        local_handlers: Sequence[str],
        lookups: bool = False,
    ) -> IngestResult:
        """Store one provider event and what it means, in one transaction (module docstring).

        Deliveries to endpoints and to handlers in ``local_handlers`` come back leased to
        ``owner``; deliveries to other handlers are left unleased for their processes. The
        endpoint deliveries come back with their first attempt recorded (``attempt_id``).
        ``lookups``: new held outcomes are due at once (a look-up can decide them), not only
        at the end of ``correlation_window_s``."""

    @abc.abstractmethod
    async def claim_holds(
        self, *, now: float, owner: str, lease_s: float, limit: int
    ) -> list[Hold]:
        """Lease held outcomes due for a look at ``now`` (a look-up, or the window's end)."""

    @abc.abstractmethod
    async def retry_hold(self, hold_id: int, *, next_check_at: float, owner: str) -> None:
        """Give back a claimed hold, due again at ``next_check_at``, one look-up counted."""

    @abc.abstractmethod
    async def resolve_hold(
        self,
        hold_id: int,
        *,
        answer: Answer | None,
        now: float,
        owner: str,
        lease_s: float,
        local_handlers: Sequence[str],
    ) -> IngestResult:
        """Decide a held outcome in one transaction (:func:`bridge.holds.decide_hold` over the
        stored links and invoice payments; ``answer`` is a look-up's, None when there is none)
        and persist it: the events emitted, or dropped with what was learned. Duplicate when
        it was decided already (a link arrived, or another claim won)."""

    @abc.abstractmethod
    async def forget_invoice_payments(self, *, seen_before: float) -> int:
        """Delete the invoice payments seen before ``seen_before`` (no held outcome can be
        matched against them any more); returns how many."""

    @abc.abstractmethod
    async def held_summary(self) -> tuple[int, float | None]:
        """How many outcomes are held now, and when the oldest was held (None: none)."""

    @abc.abstractmethod
    async def claim_pending_fetches(
        self, *, now: float, owner: str, lease_s: float, limit: int
    ) -> list[InboxRecord]:
        """Lease inbox rows whose related object still has to be fetched (events stored
        with ``Normalized.fetch_related``)."""

    @abc.abstractmethod
    async def complete_fetch(
        self,
        pending: InboxRecord,
        fetched: InboxRecord,
        normalized: Normalized,
        *,
        now: float,
        correlation_window_s: float,
        owner: str,
        lease_s: float,
        local_handlers: Sequence[str],
        lookups: bool = False,
    ) -> IngestResult:
        """In one transaction: mark ``pending`` fetched and ingest ``fetched`` (the snapshot
        built from the fetched object) as :meth:`ingest` would. Duplicate when another instance
        completed it first."""

    # -- subscribers --------------------------------------------------------------------------
    @abc.abstractmethod
    async def put_subscriber(self, sub: Subscriber) -> Subscriber:
        """Insert or replace a subscriber (by id)."""

    @abc.abstractmethod
    async def get_subscriber(self, subscriber_id: str) -> Subscriber | None: ...

    @abc.abstractmethod
    async def delete_subscriber(self, subscriber_id: str) -> bool:
        """Delete a subscriber and its pending deliveries; False when unknown."""

    @abc.abstractmethod
    async def list_subscribers(
        self,
        *,
        kind: SubscriberKind | None = None,
        livemode: bool | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[Subscriber]: ...

    # -- deliveries ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def claim_due(
        self,
        *,
        now: float,
        owner: str,
        lease_s: float,
        limit: int,
        handlers: Sequence[str],
        exclude_subscribers: Sequence[str] = (),
    ) -> list[Delivery]:
        """Lease pending deliveries that are due, to enabled endpoints or to ``handlers``
        (names, without the ``handler:`` prefix), skipping ``exclude_subscribers``; a delivery
        leased by a live owner is never handed out twice (``FOR UPDATE SKIP LOCKED`` on
        PostgreSQL, the single writer on SQLite)."""

    @abc.abstractmethod
    async def start_attempt(
        self, delivery_id: int, *, now: float, owner: str, lease_s: float
    ) -> int | None:
        """Record an attempt before it is made and extend the lease to ``now + lease_s``;
        returns the attempt id, or None when ``owner`` no longer holds the lease (another
        instance took the delivery over, or it is no longer pending): then do not send."""

    @abc.abstractmethod
    async def finish_attempt(
        self,
        attempt_id: int,
        delivery_id: int,
        outcome: DeliveryOutcome,
        *,
        now: float,
        disable_after_failing_s: float,
    ) -> None:
        """Record the outcome, reschedule or kill the delivery, release its lease, and keep
        the subscriber's failure streak (disabling it after ``disable_after_failing_s``)."""

    async def record_attempt(
        self,
        delivery_id: int,
        outcome: DeliveryOutcome,
        *,
        started_at: float,
        now: float,
        owner: str,
        lease_s: float,
        disable_after_failing_s: float,
    ) -> bool:
        """Record an attempt that was made without :meth:`start_attempt` first, with its
        outcome (in-process handlers: a crash mid-run is covered by the lease, and the
        handler starts without waiting for a commit). False, and nothing recorded, when
        ``owner`` no longer holds the lease. Stores may do it in one transaction."""
        attempt_id = await self.start_attempt(
            delivery_id, now=started_at, owner=owner, lease_s=lease_s
        )
        if attempt_id is None:
            return False
        await self.finish_attempt(
            attempt_id,
            delivery_id,
            outcome,
            now=now,
            disable_after_failing_s=disable_after_failing_s,
        )
        return True

    @abc.abstractmethod
    async def release(self, delivery_ids: Sequence[int], *, owner: str) -> None:
        """Give back leases of deliveries not yet attempted (graceful shutdown)."""

    @abc.abstractmethod
    async def resend(
        self, event_id: str, *, now: float, subscriber_id: str | None = None
    ) -> list[int]:
        """Queue fresh deliveries of a stored event: to one subscriber, or to every enabled
        endpoint whose ``enabled_events`` match. Returns the new delivery ids."""

    # -- reads ----------------------------------------------------------------------------------
    @abc.abstractmethod
    async def list_events(
        self, *, type: str | None = None, offset: int = 0, limit: int | None = 20
    ) -> Page[Event]:
        """Canonical events, newest first; ``limit=None`` lists them all."""

    @abc.abstractmethod
    async def get_event(self, event_id: str) -> Event | None: ...

    @abc.abstractmethod
    async def list_attempts(
        self,
        *,
        event_id: str | None = None,
        subscriber_id: str | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> Page[AttemptRecord]:
        """Delivery attempts, newest first."""

    # -- retention ------------------------------------------------------------------------------
    @abc.abstractmethod
    async def prune(
        self, cutoffs: Cutoffs, cursor: PruneCursor, *, limit: int, dry_run: bool = False
    ) -> tuple[PruneCounts, PruneCursor | None]:
        """Prune one window of at most ``limit`` rows, in one short transaction, as
        :mod:`bridge.store.retention` decides; returns what went and the cursor of the next
        window (None: the run is over). ``dry_run``: count only."""

    @abc.abstractmethod
    async def counts(self) -> dict[str, int]:
        """Row counts for health and metrics: inbox, ignored, events, pending, dead, held."""

    # -- operations -----------------------------------------------------------------------------
    @abc.abstractmethod
    async def list_deliveries(
        self,
        *,
        status: DeliveryStatus | None = None,
        subscriber_id: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> KeysetPage[DeliveryRecord]:
        """Deliveries newest first, optionally of one status and one subscriber; a page
        continues after ``before_id`` (the previous page's ``next_cursor``)."""

    @abc.abstractmethod
    async def recover(
        self, endpoint_id: str, *, since: float, now: float, dry_run: bool = False
    ) -> RecoveryResult:
        """Resend what failed for an endpoint since ``since`` (:mod:`bridge.recovery`), in
        one transaction; with ``dry_run`` count it and change nothing. Raises LookupError
        when ``endpoint_id`` is not an endpoint."""

    @abc.abstractmethod
    async def delivery_stats(self) -> list[EndpointDeliveryStats]:
        """Per subscriber: pending and dead deliveries, the oldest pending one's age."""

    @abc.abstractmethod
    async def acquire_job(
        self, name: str, *, owner: str, now: float, lease_s: float
    ) -> JobLease | None:
        """Take (or renew) the lease on job ``name`` unless another owner holds it unexpired;
        None when it does. One instance at a time runs a job when several share a store."""

    @abc.abstractmethod
    async def save_job(
        self, name: str, *, owner: str, checkpoint: str | None, now: float, lease_s: float
    ) -> bool:
        """Store ``checkpoint`` (None: keep the one stored) and extend the lease; False
        (nothing saved) when ``owner`` no longer holds it."""

    @abc.abstractmethod
    async def release_job(self, name: str, *, owner: str) -> None:
        """Give the lease back (the checkpoint stays)."""

    # -- console reads ----------------------------------------------------------------------
    @abc.abstractmethod
    async def browse_events(
        self, query: EventQuery, *, before: int | None = None, limit: int = 50
    ) -> EventSlice:
        """Events matching ``query``, newest first, with ``seq < before`` (keyset paging: the
        cost of a page does not grow with the store)."""

    @abc.abstractmethod
    async def get_inbox(self, provider: str, provider_event_id: str) -> InboxRecord | None:
        """The provider request stored for ``(provider, provider_event_id)``."""

    @abc.abstractmethod
    async def overview(self, *, since: float) -> StoreOverview:
        """Counts for the console's overview; ``events_since`` counts events created since
        ``since``."""

    @abc.abstractmethod
    async def activity(
        self, *, since: float, bucket_s: float, buckets: int
    ) -> list[ActivityBucket]:
        """``buckets`` consecutive buckets from ``since``: events created and attempts failed
        (by start time) in each."""

    @abc.abstractmethod
    async def last_success_at(self, subscriber_id: str) -> float | None:
        """When an attempt to ``subscriber_id`` last succeeded (finished), or None."""
