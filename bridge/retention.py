"""Retention runs: the store pruned by the ``retention`` settings, one short window at a time
(:meth:`bridge.store.base.Store.prune`; what goes is decided in :mod:`bridge.store.retention`).

``serve`` runs :meth:`Pruner.run` every :data:`PRUNE_EVERY_S`; ``paybridge prune`` runs it once.
Each window is one small transaction (at most :data:`WINDOW_ROWS` rows examined), and the run
yields to the event loop between windows, so an ingest waits at most one window for the writer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bridge.clock import Clock, as_clock
from bridge.config import RetentionConfig
from bridge.errors import StoreError
from bridge.metrics import Metrics
from bridge.store.base import Store
from bridge.store.retention import PruneCounts, PruneCursor, cutoffs

__all__ = ["PRUNE_EVERY_S", "WINDOW_ROWS", "Pruner", "describe"]

log = logging.getLogger(__name__)
PRUNE_EVERY_S = 600.0
WINDOW_ROWS = 100
_KINDS = ("events", "stubs", "deliveries", "attempts", "inbox", "pi_links", "pi_standalone")


class Pruner:
    """Prunes ``store`` by ``retention`` as of ``clock()`` (unix seconds)."""

    def __init__(
        self,
        store: Store,
        retention: RetentionConfig,
        *,
        clock: Clock | Callable[[], float],
        metrics: Metrics | None = None,
        window_rows: int = WINDOW_ROWS,
    ) -> None:
        self._store = store
        self._retention = retention
        self._clock = as_clock(clock)
        self._metrics = metrics
        self._window = window_rows

    async def run(self, *, dry_run: bool = False) -> PruneCounts:
        """One run over every table; returns what was pruned (``dry_run``: what would be,
        counting only rows prunable now, so rows they would free are not counted)."""
        r = self._retention
        c = cutoffs(
            self._clock(),
            events_days=r.events_days,
            attempts_days=r.attempts_days,
            inbox_days=r.inbox_days,
        )
        total = PruneCounts()
        cursor: PruneCursor | None = PruneCursor()
        while cursor is not None:
            counts, cursor = await self._store.prune(c, cursor, limit=self._window, dry_run=dry_run)
            total.add(counts)
            if not dry_run:
                self._count(counts)
            await asyncio.sleep(0)  # let waiting ingests reach the writer first
        return total

    def _count(self, counts: PruneCounts) -> None:
        if self._metrics is None:
            return
        for kind in _KINDS:
            n = getattr(counts, kind)
            if n:
                self._metrics.child(self._metrics.pruned, kind).inc(n)

    async def run_forever(self, every_s: float = PRUNE_EVERY_S) -> None:
        """Run every ``every_s`` seconds (the first after ``every_s``) until cancelled; a
        failing run is logged and retried at the next turn."""
        while True:
            await self._clock.sleep(every_s)
            try:
                counts = await self.run()
            except StoreError as exc:
                log.warning("retention run failed, retried in %.0fs: %s", every_s, exc)
            else:
                if counts.total():
                    log.info("retention pruned %s", describe(counts))


def describe(counts: PruneCounts) -> str:
    """One line: ``3 events (1 kept as ids), 6 deliveries, 9 attempts, 3 inbox rows,
    2 PaymentIntent links, 1 standalone PaymentIntent marks``."""
    return (
        f"{counts.events} events ({counts.stubs} kept as ids), {counts.deliveries} deliveries,"
        f" {counts.attempts} attempts, {counts.inbox} inbox rows,"
        f" {counts.pi_links} PaymentIntent links, {counts.pi_standalone} standalone PaymentIntent"
        " marks"
    )
