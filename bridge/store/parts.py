"""The parts every SQL backend is made of, one per concern, with the same names and methods on
SQLite and PostgreSQL: :class:`bridge.store.composed.ComposedStore` puts a backend's parts
together behind the :class:`bridge.store.base.Store` contract, identically for each backend.

A part's methods return awaitables (coroutines on PostgreSQL, the writer thread's futures on
SQLite); their semantics are those of the contract method of the same name. They take the
contract's arguments gathered in :class:`Lease` and :class:`Writing`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Protocol

from bridge.events import Event
from bridge.holds import Answer, Hold
from bridge.normalized import Normalized
from bridge.recovery import RecoveryResult
from bridge.store.base import (
    ActivityBucket,
    AttemptRecord,
    Delivery,
    DeliveryOutcome,
    DeliveryRecord,
    DeliveryStatus,
    EndpointDeliveryStats,
    EventQuery,
    EventSlice,
    InboxRecord,
    IngestResult,
    JobLease,
    KeysetPage,
    Page,
    StoreOverview,
    Subscriber,
    SubscriberKind,
)
from bridge.store.retention import Cutoffs, PruneCounts, PruneCursor

__all__ = [
    "CorrelationPart",
    "DeliveryPart",
    "IngestPart",
    "JobPart",
    "Lease",
    "ReadPart",
    "RecoveryPart",
    "RetentionPart",
    "SubscriberPart",
    "Writing",
]


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease taken at ``now`` by ``owner`` for ``lease_s`` seconds."""

    now: float
    owner: str
    lease_s: float

    @property
    def until(self) -> float:
        return self.now + self.lease_s


@dataclass(frozen=True, slots=True)
class Writing:
    """How a transaction that may store new events writes them: at ``now``; their deliveries
    to endpoints and to the ``local`` handlers (names, without ``handler:``) leased to
    ``owner`` until ``lease_until``; held PaymentIntent outcomes for ``window_s``, due at once
    when ``lookups`` (a look-up can decide them)."""

    now: float
    owner: str
    lease_until: float
    local: frozenset[str]
    window_s: float = 0.0
    lookups: bool = False


class IngestPart(Protocol):
    """The inbox row, the canonical events and their deliveries, in one transaction."""

    def ingest(
        self, record: InboxRecord, normalized: Normalized, w: Writing
    ) -> Awaitable[IngestResult]: ...


class CorrelationPart(Protocol):
    """Held PaymentIntent outcomes and thin events whose object is still to be fetched."""

    def claim_holds(self, lease: Lease, limit: int) -> Awaitable[list[Hold]]: ...

    def retry_hold(self, hold_id: int, next_check_at: float, owner: str) -> Awaitable[None]: ...

    def resolve_hold(
        self, hold_id: int, answer: Answer | None, w: Writing
    ) -> Awaitable[IngestResult]: ...

    def held_summary(self) -> Awaitable[tuple[int, float | None]]: ...

    def forget_invoice_payments(self, seen_before: float) -> Awaitable[int]: ...

    def claim_pending_fetches(self, lease: Lease, limit: int) -> Awaitable[list[InboxRecord]]: ...

    def complete_fetch(
        self, pending: InboxRecord, fetched: InboxRecord, normalized: Normalized, w: Writing
    ) -> Awaitable[IngestResult]: ...


class SubscriberPart(Protocol):
    """Webhook endpoints and durable bus handlers."""

    def put_subscriber(self, sub: Subscriber) -> Awaitable[Subscriber]: ...

    def get_subscriber(self, subscriber_id: str) -> Awaitable[Subscriber | None]: ...

    def delete_subscriber(self, subscriber_id: str) -> Awaitable[bool]: ...

    def list_subscribers(
        self, kind: SubscriberKind | None, livemode: bool | None, offset: int, limit: int
    ) -> Awaitable[Page[Subscriber]]: ...


class DeliveryPart(Protocol):
    """Delivery claims, attempts and their outcomes, leases, resends. ``limit_s``: how long
    an endpoint may fail straight before it is disabled."""

    def claim_due(
        self, lease: Lease, limit: int, handlers: Sequence[str], exclude: Sequence[str]
    ) -> Awaitable[list[Delivery]]: ...

    def start_attempt(self, delivery_id: int, lease: Lease) -> Awaitable[int | None]: ...

    def finish_attempt(
        self,
        attempt_id: int,
        delivery_id: int,
        outcome: DeliveryOutcome,
        now: float,
        limit_s: float,
    ) -> Awaitable[None]: ...

    def record_attempt(
        self, delivery_id: int, outcome: DeliveryOutcome, started: Lease, now: float, limit_s: float
    ) -> Awaitable[bool]: ...

    def release(self, delivery_ids: Sequence[int], owner: str) -> Awaitable[None]: ...

    def resend(
        self, event_id: str, now: float, subscriber_id: str | None
    ) -> Awaitable[list[int]]: ...


class RetentionPart(Protocol):
    """Pruning by the retention settings, one window at a time."""

    def prune(
        self, c: Cutoffs, cursor: PruneCursor, limit: int, dry_run: bool
    ) -> Awaitable[tuple[PruneCounts, PruneCursor | None]]: ...


class ReadPart(Protocol):
    """The read side: events, attempts, counts, the console's pages."""

    def list_events(
        self, type: str | None, offset: int, limit: int | None
    ) -> Awaitable[Page[Event]]: ...

    def get_event(self, event_id: str) -> Awaitable[Event | None]: ...

    def list_attempts(
        self, event_id: str | None, subscriber_id: str | None, offset: int, limit: int
    ) -> Awaitable[Page[AttemptRecord]]: ...

    def counts(self) -> Awaitable[dict[str, int]]: ...

    def browse_events(
        self, query: EventQuery, before: int | None, limit: int
    ) -> Awaitable[EventSlice]: ...

    def get_inbox(self, provider: str, provider_event_id: str) -> Awaitable[InboxRecord | None]: ...

    def overview(self, since: float) -> Awaitable[StoreOverview]: ...

    def activity(
        self, since: float, bucket_s: float, buckets: int
    ) -> Awaitable[list[ActivityBucket]]: ...

    def last_success_at(self, subscriber_id: str) -> Awaitable[float | None]: ...


class RecoveryPart(Protocol):
    """The operator's view of deliveries: listing them, their totals per subscriber, and
    resending what failed for an endpoint."""

    def list_deliveries(
        self,
        status: DeliveryStatus | None,
        subscriber_id: str | None,
        before_id: int | None,
        limit: int,
    ) -> Awaitable[KeysetPage[DeliveryRecord]]: ...

    def delivery_stats(self) -> Awaitable[list[EndpointDeliveryStats]]: ...

    def recover(
        self, endpoint_id: str, since: float, now: float, dry_run: bool
    ) -> Awaitable[RecoveryResult]: ...


class JobPart(Protocol):
    """Named jobs with a lease and a checkpoint (one instance at a time runs each)."""

    def acquire_job(self, name: str, lease: Lease) -> Awaitable[JobLease | None]: ...

    def save_job(self, name: str, checkpoint: str | None, lease: Lease) -> Awaitable[bool]: ...

    def release_job(self, name: str, owner: str) -> Awaitable[None]: ...
