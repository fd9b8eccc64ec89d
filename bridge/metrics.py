"""Prometheus metrics, one registry per :class:`bridge.service.Bridge` (no global state)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from bridge.store.base import EndpointDeliveryStats

__all__ = ["DeliveryGauges", "Metrics"]

_M = TypeVar("_M", Counter, Histogram)


class Metrics:
    """The counters paybridge keeps; :meth:`render` gives the text exposition format."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self.inbound = Counter(
            "paybridge_inbound_requests",
            "Provider webhook requests by source and outcome",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.events = Counter(
            "paybridge_canonical_events",
            "Canonical events stored, by type",
            ["type"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "paybridge_delivery_attempts",
            "Delivery attempts by subscriber kind and result",
            ["kind", "result"],
            registry=self.registry,
        )
        self.delivery_seconds = Histogram(
            "paybridge_delivery_duration_seconds",
            "Duration of delivery attempts",
            ["kind"],
            registry=self.registry,
        )
        self.held_decisions = Histogram(
            "paybridge_held_decisions_age_seconds",
            "Held PaymentIntent decisions made, by outcome and basis (link, lookup, match,"
            " no_match), and how long each was held",
            ["outcome", "basis"],
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
            registry=self.registry,
        )
        self.held_waiting = Gauge(
            "paybridge_held_decisions_waiting",
            "Held PaymentIntent decisions not decided yet (all instances)",
            registry=self.registry,
        )
        self.held_oldest = Gauge(
            "paybridge_held_decisions_oldest_age_seconds",
            "How long the oldest held PaymentIntent decision has waited (0: none)",
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "paybridge_deliveries_in_flight",
            "Delivery attempts running now",
            registry=self.registry,
        )
        self.pruned = Counter(
            "paybridge_pruned_rows",
            "Rows removed by retention, by kind (events, stubs, deliveries, attempts, inbox,"
            " pi_links, pi_standalone)",
            ["kind"],
            registry=self.registry,
        )
        self.queued = Gauge(
            "paybridge_deliveries_queued",
            "Deliveries leased by this instance, waiting for a slot",
            registry=self.registry,
        )
        self.owed = DeliveryGauges(self.registry)

    def child(self, metric: _M, *labels: str) -> _M:
        """``metric.labels(*labels)``, kept for the next time: the hot paths count every
        request and delivery, and ``labels()`` validates and locks on each call. Label values
        are bounded (sources, outcomes, catalog event types)."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def render(self) -> bytes:
        return generate_latest(self.registry)


class DeliveryGauges:
    """What the store says is owed to each subscriber, read at every scrape (the same figures
    from every instance sharing the store): oldest pending delivery's age, pending and dead
    deliveries, endpoint state, and whether the store answered at all."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["subscriber", "kind"]
        self.oldest_pending = Gauge(
            "paybridge_oldest_pending_delivery_age_seconds",
            "Age of the oldest delivery still owed to a subscriber (0: none pending)",
            labels,
            registry=registry,
        )
        self.pending = Gauge(
            "paybridge_pending_deliveries",
            "Deliveries owed to a subscriber, due now or retrying later",
            labels,
            registry=registry,
        )
        self.dead = Gauge(
            "paybridge_dead_deliveries",
            "Deliveries out of retries and not resolved since (`paybridge recover` resends them)",
            labels,
            registry=registry,
        )
        self.enabled = Gauge(
            "paybridge_endpoint_enabled",
            "1 while an endpoint is enabled, 0 once disabled (410, failing too long, operator)",
            ["endpoint"],
            registry=registry,
        )
        self.failing = Gauge(
            "paybridge_endpoint_failing",
            "1 while an endpoint's last attempts failed (a failure streak is running)",
            ["endpoint"],
            registry=registry,
        )
        self.store_up = Gauge(
            "paybridge_store_up",
            "1 when the store answered this scrape's queries, else 0",
            registry=registry,
        )

    def observe(self, stats: Sequence[EndpointDeliveryStats], *, now: float) -> None:
        """Replace every subscriber's figures with ``stats`` (gone subscribers disappear)."""
        for gauge in (self.oldest_pending, self.pending, self.dead, self.enabled, self.failing):
            gauge.clear()
        for s in stats:
            oldest = s.oldest_pending_created_at
            self.oldest_pending.labels(s.subscriber_id, s.kind).set(
                max(0.0, now - oldest) if oldest is not None else 0.0
            )
            self.pending.labels(s.subscriber_id, s.kind).set(s.pending)
            self.dead.labels(s.subscriber_id, s.kind).set(s.dead)
            if s.kind == "endpoint":
                self.enabled.labels(s.subscriber_id).set(1 if s.status == "enabled" else 0)
                self.failing.labels(s.subscriber_id).set(1 if s.failing else 0)
        self.store_up.set(1)

    def store_down(self) -> None:
        """The store did not answer: the last figures stay, marked stale by ``store_up``."""
        self.store_up.set(0)
