"""Prometheus metrics, one registry per :class:`bridge.service.Bridge` (no global state)."""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["Metrics"]

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
        self.in_flight = Gauge(
            "paybridge_deliveries_in_flight",
            "Delivery attempts running now",
            registry=self.registry,
        )
        self.pruned = Counter(
            "paybridge_pruned_rows",
            "Rows removed by retention, by kind (events, stubs, deliveries, attempts, inbox)",
            ["kind"],
            registry=self.registry,
        )
        self.queued = Gauge(
            "paybridge_deliveries_queued",
            "Deliveries leased by this instance, waiting for a slot",
            registry=self.registry,
        )

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
