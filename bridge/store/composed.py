"""A store put together from a backend's parts (:mod:`bridge.store.parts`): each contract
method is answered by the part that owns its concern. SQLite and PostgreSQL are composed here
in the same way; a backend adds only its parts and how it opens and closes."""

from __future__ import annotations

from collections.abc import Sequence

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
    Store,
    StoreOverview,
    Subscriber,
    SubscriberKind,
)
from bridge.store.parts import (
    CorrelationPart,
    DeliveryPart,
    IngestPart,
    JobPart,
    Lease,
    ReadPart,
    RecoveryPart,
    RetentionPart,
    SubscriberPart,
    Writing,
)
from bridge.store.retention import Cutoffs, PruneCounts, PruneCursor

__all__ = ["ComposedStore"]


class ComposedStore(Store):
    """The contract over one backend's parts; subclasses implement ``open`` and ``close``."""

    def __init__(
        self,
        *,
        ingest: IngestPart,
        correlation: CorrelationPart,
        subscribers: SubscriberPart,
        deliveries: DeliveryPart,
        reads: ReadPart,
        recovery: RecoveryPart,
        jobs: JobPart,
        retention: RetentionPart,
    ) -> None:
        self._ingest = ingest
        self._correlation = correlation
        self._subscriber_part = subscribers
        self._deliveries = deliveries
        self._reads = reads
        self._recovery = recovery
        self._jobs = jobs
        self._retention = retention

    # -- ingress ----------------------------------------------------------------------------
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
        w = Writing(
            now, owner, now + lease_s, frozenset(local_handlers), correlation_window_s, lookups
        )
        return await self._ingest.ingest(record, normalized, w)

    async def claim_holds(
        self, *, now: float, owner: str, lease_s: float, limit: int
    ) -> list[Hold]:
        return await self._correlation.claim_holds(Lease(now, owner, lease_s), limit)

    async def retry_hold(self, hold_id: int, *, next_check_at: float, owner: str) -> None:
        await self._correlation.retry_hold(hold_id, next_check_at, owner)

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
        w = Writing(now, owner, now + lease_s, frozenset(local_handlers))
        return await self._correlation.resolve_hold(hold_id, answer, w)

    async def held_summary(self) -> tuple[int, float | None]:
        return await self._correlation.held_summary()

    async def forget_invoice_payments(self, *, seen_before: float) -> int:
        return await self._correlation.forget_invoice_payments(seen_before)

    async def claim_pending_fetches(
        self, *, now: float, owner: str, lease_s: float, limit: int
    ) -> list[InboxRecord]:
        return await self._correlation.claim_pending_fetches(Lease(now, owner, lease_s), limit)

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
        w = Writing(
            now, owner, now + lease_s, frozenset(local_handlers), correlation_window_s, lookups
        )
        return await self._correlation.complete_fetch(pending, fetched, normalized, w)

    # -- subscribers --------------------------------------------------------------------------
    async def put_subscriber(self, sub: Subscriber) -> Subscriber:
        return await self._subscriber_part.put_subscriber(sub)

    async def get_subscriber(self, subscriber_id: str) -> Subscriber | None:
        return await self._subscriber_part.get_subscriber(subscriber_id)

    async def delete_subscriber(self, subscriber_id: str) -> bool:
        return await self._subscriber_part.delete_subscriber(subscriber_id)

    async def list_subscribers(
        self,
        *,
        kind: SubscriberKind | None = None,
        livemode: bool | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[Subscriber]:
        return await self._subscriber_part.list_subscribers(kind, livemode, offset, limit)

    # -- deliveries ---------------------------------------------------------------------------
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
        lease = Lease(now, owner, lease_s)
        return await self._deliveries.claim_due(lease, limit, handlers, exclude_subscribers)

    async def start_attempt(
        self, delivery_id: int, *, now: float, owner: str, lease_s: float
    ) -> int | None:
        return await self._deliveries.start_attempt(delivery_id, Lease(now, owner, lease_s))

    async def finish_attempt(
        self,
        attempt_id: int,
        delivery_id: int,
        outcome: DeliveryOutcome,
        *,
        now: float,
        disable_after_failing_s: float,
    ) -> None:
        await self._deliveries.finish_attempt(
            attempt_id, delivery_id, outcome, now, disable_after_failing_s
        )

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
        started = Lease(started_at, owner, lease_s)
        return await self._deliveries.record_attempt(
            delivery_id, outcome, started, now, disable_after_failing_s
        )

    async def release(self, delivery_ids: Sequence[int], *, owner: str) -> None:
        await self._deliveries.release(delivery_ids, owner)

    async def resend(
        self, event_id: str, *, now: float, subscriber_id: str | None = None
    ) -> list[int]:
        return await self._deliveries.resend(event_id, now, subscriber_id)

    # -- reads ----------------------------------------------------------------------------------
    async def list_events(
        self, *, type: str | None = None, offset: int = 0, limit: int | None = 20
    ) -> Page[Event]:
        return await self._reads.list_events(type, offset, limit)

    async def get_event(self, event_id: str) -> Event | None:
        return await self._reads.get_event(event_id)

    async def list_attempts(
        self,
        *,
        event_id: str | None = None,
        subscriber_id: str | None = None,
        offset: int = 0,
        limit: int = 20,
    ) -> Page[AttemptRecord]:
        return await self._reads.list_attempts(event_id, subscriber_id, offset, limit)

    async def counts(self) -> dict[str, int]:
        return await self._reads.counts()

    # -- operations -----------------------------------------------------------------------------
    async def list_deliveries(
        self,
        *,
        status: DeliveryStatus | None = None,
        subscriber_id: str | None = None,
        before_id: int | None = None,
        limit: int = 50,
    ) -> KeysetPage[DeliveryRecord]:
        return await self._recovery.list_deliveries(status, subscriber_id, before_id, limit)

    async def recover(
        self, endpoint_id: str, *, since: float, now: float, dry_run: bool = False
    ) -> RecoveryResult:
        return await self._recovery.recover(endpoint_id, since, now, dry_run)

    async def delivery_stats(self) -> list[EndpointDeliveryStats]:
        return await self._recovery.delivery_stats()

    async def acquire_job(
        self, name: str, *, owner: str, now: float, lease_s: float
    ) -> JobLease | None:
        return await self._jobs.acquire_job(name, Lease(now, owner, lease_s))

    async def save_job(
        self, name: str, *, owner: str, checkpoint: str | None, now: float, lease_s: float
    ) -> bool:
        return await self._jobs.save_job(name, checkpoint, Lease(now, owner, lease_s))

    async def release_job(self, name: str, *, owner: str) -> None:
        await self._jobs.release_job(name, owner)

    # -- retention ------------------------------------------------------------------------------
    async def prune(
        self, cutoffs: Cutoffs, cursor: PruneCursor, *, limit: int, dry_run: bool = False
    ) -> tuple[PruneCounts, PruneCursor | None]:
        return await self._retention.prune(cutoffs, cursor, limit, dry_run)

    # -- the console --------------------------------------------------------------------------
    async def browse_events(
        self, query: EventQuery, *, before: int | None = None, limit: int = 50
    ) -> EventSlice:
        return await self._reads.browse_events(query, before, limit)

    async def get_inbox(self, provider: str, provider_event_id: str) -> InboxRecord | None:
        return await self._reads.get_inbox(provider, provider_event_id)

    async def overview(self, *, since: float) -> StoreOverview:
        return await self._reads.overview(since)

    async def activity(
        self, *, since: float, bucket_s: float, buckets: int
    ) -> list[ActivityBucket]:
        return await self._reads.activity(since, bucket_s, buckets)

    async def last_success_at(self, subscriber_id: str) -> float | None:
        return await self._reads.last_success_at(subscriber_id)
