"""The dispatcher: runs deliveries to webhook endpoints and bus handlers, at least once.

Deliveries arrive leased (from ingest, or claimed by the poll loop), wait in a queue per
subscriber, and run with at most ``max_in_flight_per_endpoint`` attempts per subscriber and
``max_in_flight`` in all, so a slow or dead endpoint only ever holds its own slots (no head-of-
line blocking across subscribers). Every attempt is recorded before it is made; its outcome is
classified in one place (:func:`bridge.retry.classify`) and the store reschedules, kills or
completes the delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace

from bridge.bus import EventBus, handler_subscriber_id
from bridge.clock import SYSTEM_CLOCK, Clock
from bridge.config import BusConfig, DeliveryConfig
from bridge.errors import StoreError
from bridge.logs import transition
from bridge.metrics import Metrics
from bridge.retry import Outcome, RetryPolicy, classify, parse_retry_after
from bridge.store.base import Delivery, DeliveryOutcome, Store, Subscriber
from bridge.webhook import WebhookSender, describe_error

__all__ = ["Dispatcher"]

log = logging.getLogger(__name__)
_HANDLER_PREFIX = handler_subscriber_id("")

_QUEUE_MAX_PER_SUBSCRIBER = 2000
# Subscribers can change on another instance (admin API there): reload them this often, so an
# endpoint's new URL, secret or status is used here too, not only after a failure.
_SUBSCRIBERS_MAX_AGE_S = 1.0


class Dispatcher:
    """See the module docstring. ``submit`` takes leased deliveries; ``start``/``stop``
    run the poll loop (claims) and drain in-flight work."""

    def __init__(
        self,
        *,
        store: Store,
        bus: EventBus,
        sender: WebhookSender,
        delivery: DeliveryConfig,
        bus_config: BusConfig,
        owner: str,
        lease_s: float,
        metrics: Metrics,
        clock: Clock = SYSTEM_CLOCK,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.store, self.bus, self.sender = store, bus, sender
        self.cfg, self.bus_cfg = delivery, bus_config
        self.owner, self.lease_s = owner, lease_s
        self.metrics, self.clock, self.rand = metrics, clock, rand
        self.policy = RetryPolicy(
            tuple(delivery.schedule_s), delivery.jitter, delivery.retry_after_max_s
        )
        self._queues: dict[str, deque[Delivery]] = {}
        self._queued = 0  # deliveries in self._queues
        self._inflight: dict[str, int] = {}
        # Deliveries queued or in flight here → the monotonic time they were leased.
        self._claimed_at: dict[int, float] = {}
        self._slot_held: set[int] = set()  # deliveries holding a per-subscriber slot
        self._running: set[int] = set()  # delivery ids with an attempt in flight
        self._total = 0
        self._subs: dict[str, Subscriber] = {}
        self._subs_loaded_at = 0.0  # clock.monotonic() of the last full reload
        self._tasks: set[asyncio.Task[None]] = set()
        # Webhook attempts started by one loop iteration's submits, spawned together at the
        # end of it (see _pump): while the list is not empty, a _spawn_webhooks is scheduled.
        self._webhooks_next: list[Delivery] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        # Read when /metrics is scraped, not written on every pump.
        metrics.in_flight.set_function(lambda: self._total)
        metrics.queued.set_function(lambda: self._queued)

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load subscribers and start the poll loop. Raises StoreError when the store cannot
        answer."""
        await self.refresh_subscribers()
        self._loop_task = asyncio.create_task(self._run(), name="paybridge-dispatch")

    async def stop(self, timeout_s: float) -> dict[str, int]:
        """Stop claiming, wait up to ``timeout_s`` for attempts in flight, give back the leases
        of queued deliveries. Returns a summary for the shutdown log line."""
        self._stopping = True
        self._spawn_webhooks()  # counted in flight already: started and waited for below
        if self._loop_task is not None:
            # Let a tick in progress finish instead of cancelling it: a claim cancelled while
            # the store commits it would stay leased to this stopped instance. What it claims
            # now is released by submit() (stopping).
            self._wake.set()
            done, _ = await asyncio.wait({self._loop_task}, timeout=timeout_s)
            if not done:
                self._loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._loop_task
        queued = [d.id for q in self._queues.values() for d in q]
        self._queues.clear()
        self._queued = 0
        with contextlib.suppress(StoreError):
            await self.store.release(queued, owner=self.owner)
        abandoned: list[int] = []
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
            abandoned = list(self._running)
            for t in pending:
                t.cancel()
            if pending:
                await asyncio.wait(pending)
        # An abandoned attempt's outcome is unknown: give its lease back so the next start
        # (this instance or another) retries it at once instead of after the lease expires.
        with contextlib.suppress(StoreError):
            await self.store.release(abandoned, owner=self.owner)
        return {"released": len(queued), "abandoned_in_flight": len(abandoned)}

    def invalidate(self) -> None:
        """Subscribers changed (admin API): reload them at the next tick."""
        self._subs.clear()
        self._wake.set()

    async def refresh_subscribers(self) -> None:
        """Reload every subscriber from the store; raises StoreError."""
        page = await self.store.list_subscribers(limit=1_000_000)
        self._subs = {s.id: s for s in page.items}
        self._subs_loaded_at = self.clock.monotonic()

    # -- intake ---------------------------------------------------------------------------------
    def submit(self, deliveries: Iterable[Delivery]) -> None:
        """Queue deliveries already leased to this instance."""
        overflow: list[int] = []
        for d in deliveries:
            if d.id in self._claimed_at:
                continue
            q = self._queues.setdefault(d.subscriber_id, deque())
            if len(q) >= _QUEUE_MAX_PER_SUBSCRIBER or self._stopping:
                overflow.append(d.id)  # given back: the poll loop claims it when there is room
                continue
            self._claimed_at[d.id] = self.clock.monotonic()
            q.append(d)
            self._queued += 1
            self._idle.clear()
        if overflow:
            self._spawn(self.store.release(overflow, owner=self.owner))
        self._pump()

    def _pump(self, only: str | None = None) -> None:
        """Start queued deliveries while their subscriber and the global budget have room:
        every subscriber's queue, or only ``only``'s (a slot of its own was freed)."""
        limit = self.cfg.max_in_flight_per_endpoint
        webhooks_were_due = bool(self._webhooks_next)
        if only is None:
            queues = list(self._queues.items())
        else:
            mine = self._queues.get(only)
            queues = [(only, mine)] if mine is not None else []
        for sid, q in queues:
            while q and self._inflight.get(sid, 0) < limit and self._total < self.cfg.max_in_flight:
                d = q.popleft()
                self._queued -= 1
                self._inflight[sid] = self._inflight.get(sid, 0) + 1
                self._slot_held.add(d.id)
                self._total += 1
                if sid.startswith(_HANDLER_PREFIX):
                    self._spawn(self._attempt(d))
                else:
                    self._webhooks_next.append(d)
            if not q:
                del self._queues[sid]
        if self._webhooks_next and not webhooks_were_due:
            asyncio.get_running_loop().call_soon(self._spawn_webhooks)
        if self._total == 0 and not self._queues:
            self._idle.set()

    def _spawn_webhooks(self) -> None:
        """Start the webhook attempts queued by _pump. Bus handlers start at once and webhook
        POSTs one callback later: when a group commit releases a burst of events (after a slow
        fsync, say), every event's handler then starts before the first of the burst's POSTs
        is built and signed, instead of behind all the earlier events' POSTs."""
        started, self._webhooks_next = self._webhooks_next, []
        for d in started:
            self._spawn(self._attempt(d))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        """Wait until nothing is queued or in flight here (tests and benchmarks)."""
        await self._idle.wait()

    # -- one attempt ----------------------------------------------------------------------------
    async def _subscriber(self, sid: str) -> Subscriber | None:
        sub = self._subs.get(sid)
        if sub is None:
            sub = await self.store.get_subscriber(sid)
            if sub is not None:
                self._subs[sid] = sub
        return sub

    async def _attempt(self, d: Delivery) -> None:
        self._running.add(d.id)
        try:
            await self._attempt_inner(d)
        except StoreError as exc:
            log.warning(
                "delivery %s: store unavailable (%s); lease will expire and retry", d.id, exc
            )
        except Exception:
            log.exception("delivery %s: unexpected error", d.id)
        finally:
            self._running.discard(d.id)
            self._claimed_at.pop(d.id, None)
            self._free_slot(d)
            # Only a full global budget can hold back other subscribers' queues.
            was_full = self._total >= self.cfg.max_in_flight
            self._total -= 1
            self._pump(None if was_full else d.subscriber_id)

    def _free_slot(self, d: Delivery) -> None:
        """Give back the subscriber's in-flight slot (once): as soon as the request is over,
        before its outcome is committed, so a subscriber's throughput is not bound by commit
        latency. The global budget (``_total``) is held until the outcome is recorded."""
        if d.id not in self._slot_held:
            return
        self._slot_held.discard(d.id)
        self._inflight[d.subscriber_id] -= 1
        if not self._inflight[d.subscriber_id]:
            del self._inflight[d.subscriber_id]
        self._pump(d.subscriber_id)

    async def _attempt_inner(self, d: Delivery) -> None:
        sub = await self._subscriber(d.subscriber_id)
        if sub is None or sub.status != "enabled":
            if d.attempt_id is not None:  # close the first attempt recorded at ingest
                await self._not_sent(d, d.attempt_id, "not sent: endpoint disabled")
            else:
                await self.store.release([d.id], owner=self.owner)
            return
        if sub.kind == "handler" and self._lease_covers(d, self.bus_cfg.handler_timeout_s):
            await self._handle_in_process(sub, d)
            return
        if d.attempt_id is not None:  # first attempt already recorded by the ingest commit
            if not self._lease_covers(d, self.cfg.timeout_s):
                await self._give_back_unsent(d, d.attempt_id)
                return
            attempt_id, attempt_no = d.attempt_id, d.attempts
        else:
            started = await self.store.start_attempt(
                d.id, now=self.clock(), owner=self.owner, lease_s=self.lease_s
            )
            if started is None:  # another instance holds it now, or it is no longer pending
                return
            attempt_id, attempt_no = started, d.attempts + 1
        try:
            if sub.kind == "handler":
                outcome = await self._run_handler(sub, d, attempt_no)
            else:
                outcome = await self._post(sub, d, attempt_no)
        except asyncio.CancelledError:  # stop() gave up waiting for this attempt
            await self._finish_abandoned(attempt_id, d)
            raise
        if outcome.disable_endpoint:  # seen by the next queued delivery before it is sent
            self._subs[sub.id] = replace(
                sub, status="disabled", disabled_reason=outcome.disable_endpoint
            )
        self._free_slot(d)
        await self.store.finish_attempt(
            attempt_id,
            d.id,
            outcome,
            now=self.clock(),
            disable_after_failing_s=self.cfg.disable_after_failing_s,
        )
        self._log_outcome(sub, d, attempt_no, outcome)
        if outcome.disable_endpoint or not outcome.delivered:
            self._subs.pop(sub.id, None)  # its failure streak or status may have changed
        if not outcome.delivered and not outcome.disable_endpoint:
            await self._log_if_disabled(sub)

    def _lease_covers(self, d: Delivery, run_s: float) -> bool:
        """True while the lease taken at claim time still outlasts a run of ``run_s``."""
        claimed = self._claimed_at.get(d.id)
        if claimed is None:
            return False
        left = self.lease_s - (self.clock.monotonic() - claimed)
        return left > run_s + 2

    async def _give_back_unsent(self, d: Delivery, attempt_id: int) -> None:
        """A delivery whose first attempt was recorded at ingest waited in the local queue
        until its lease could no longer cover a send: record that attempt as not made, due
        now, and let the next claim (here or elsewhere) take it with a fresh lease."""
        await self._not_sent(d, attempt_id, "not sent: queued past its lease")

    async def _not_sent(self, d: Delivery, attempt_id: int, why: str) -> None:
        """Close a recorded attempt that was never made; the delivery stays due now."""
        outcome = DeliveryOutcome(False, error=why, next_attempt_at=self.clock())
        await self.store.finish_attempt(
            attempt_id,
            d.id,
            outcome,
            now=self.clock(),
            disable_after_failing_s=self.cfg.disable_after_failing_s,
        )

    async def _handle_in_process(self, sub: Subscriber, d: Delivery) -> None:
        """Run a bus handler at once, recording the attempt with its outcome in one write
        afterwards: the handler starts without waiting for a commit. A crash mid-run is covered
        by the lease taken at claim time (the delivery is retried elsewhere once it expires)."""
        started, attempt_no = self.clock(), d.attempts + 1
        try:
            outcome = await self._run_handler(sub, d, attempt_no)
        except asyncio.CancelledError:  # stop() gave up waiting for this handler
            self._free_slot(d)
            abandoned = DeliveryOutcome(
                False, error="abandoned: paybridge stopped mid-attempt", next_attempt_at=started
            )
            with contextlib.suppress(StoreError):
                await self._record(d, abandoned, started)
            raise
        self._free_slot(d)  # the run is over: the next delivery need not wait for this commit
        if await self._record(d, outcome, started):
            self._log_outcome(sub, d, attempt_no, outcome)
        else:
            log.warning("handler %s ran event=%s after its lease was lost", sub.id, d.event.id)

    async def _record(self, d: Delivery, outcome: DeliveryOutcome, started: float) -> bool:
        return await self.store.record_attempt(
            d.id,
            outcome,
            started_at=started,
            now=self.clock(),
            owner=self.owner,
            lease_s=self.lease_s,
            disable_after_failing_s=self.cfg.disable_after_failing_s,
        )

    async def _finish_abandoned(self, attempt_id: int, d: Delivery) -> None:
        """Record an attempt cut short by shutdown as failed and due now, so the next start
        retries it at once (the receiver may or may not have processed it: at least once)."""
        outcome = DeliveryOutcome(
            False, error="abandoned: paybridge stopped mid-attempt", next_attempt_at=self.clock()
        )
        with contextlib.suppress(StoreError):
            await self.store.finish_attempt(
                attempt_id,
                d.id,
                outcome,
                now=self.clock(),
                disable_after_failing_s=self.cfg.disable_after_failing_s,
            )
        log.info("abandoned event=%s to=%s at shutdown; due again now", d.event.id, d.subscriber_id)

    async def _log_if_disabled(self, before: Subscriber) -> None:
        """The store disables an endpoint failing for ``disable_after_failing_s`` straight;
        say so once, when it happens."""
        after = await self._subscriber(before.id)
        if before.status == "enabled" and after is not None and after.status == "disabled":
            transition(
                log,
                "endpoint_disabled",
                subscriber_id=after.id,
                reason=after.disabled_reason,
            )

    async def _post(self, sub: Subscriber, d: Delivery, attempt_no: int) -> DeliveryOutcome:
        res = await self.sender.send(sub, d.event)
        verdict = classify(res.status, res.error)
        self.metrics.child(self.metrics.deliveries, "endpoint", verdict.value).inc()
        self.metrics.child(self.metrics.delivery_seconds, "endpoint").observe(
            res.duration_ms / 1000
        )
        error = describe_error(res.error) if res.error is not None else None
        if verdict is Outcome.DELIVERED:
            return DeliveryOutcome(True, res.status, None, res.response_body, res.duration_ms)
        if verdict is Outcome.DISABLE_ENDPOINT:
            return DeliveryOutcome(
                False,
                res.status,
                error,
                res.response_body,
                res.duration_ms,
                None,
                disable_endpoint=f"endpoint answered {res.status} Gone",
            )
        now = self.clock()
        delay = self.policy.delay_with_retry_after(
            attempt_no, self.rand(), parse_retry_after(res.retry_after, now)
        )
        nxt = None if delay is None else now + delay
        return DeliveryOutcome(False, res.status, error, res.response_body, res.duration_ms, nxt)

    async def _run_handler(self, sub: Subscriber, d: Delivery, attempt_no: int) -> DeliveryOutcome:
        name = sub.id[len("handler:") :]
        started = time.perf_counter()
        try:
            await self.bus.run_handler(name, d.event, timeout_s=self.bus_cfg.handler_timeout_s)
        except Exception as exc:  # a handler's failure is data, never a crash
            ms = (time.perf_counter() - started) * 1000
            self.metrics.child(self.metrics.deliveries, "handler", "retry").inc()
            delay = self.policy.next_delay_s(attempt_no, self.rand())
            nxt = None if delay is None else self.clock() + delay
            return DeliveryOutcome(False, None, describe_error(exc), None, ms, nxt)
        ms = (time.perf_counter() - started) * 1000
        self.metrics.child(self.metrics.deliveries, "handler", "delivered").inc()
        self.metrics.child(self.metrics.delivery_seconds, "handler").observe(ms / 1000)
        return DeliveryOutcome(True, None, None, None, ms)

    def _log_outcome(
        self, sub: Subscriber, d: Delivery, attempt_no: int, o: DeliveryOutcome
    ) -> None:
        ids = {
            "event_id": d.event.id,
            "subscriber_id": sub.id,
            "delivery_id": d.id,
            "attempt": attempt_no,
            "status_code": o.status_code,
            "duration_ms": round(o.duration_ms, 1),
        }
        if o.delivered:
            transition(log, "delivered", **ids)
        elif o.disable_endpoint:
            transition(log, "dead", **ids, error=o.error)
            transition(
                log,
                "endpoint_disabled",
                subscriber_id=sub.id,
                reason=o.disable_endpoint,
            )
        elif o.next_attempt_at is None:
            transition(log, "dead", **ids, error=o.error)
        else:
            transition(
                log,
                "retry_scheduled",
                **ids,
                error=o.error,
                next_attempt_at=round(o.next_attempt_at, 3),
                in_s=round(o.next_attempt_at - self.clock(), 1),
            )

    # -- the poll loop --------------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.tick()
            except StoreError as exc:
                log.warning("dispatcher: store unavailable: %s", exc)
            except Exception:
                log.exception("dispatcher tick failed")
            await self.clock.wait(self._wake, self.cfg.poll_interval_s)
            self._wake.clear()

    async def tick(self) -> None:
        """One round: reload subscribers if needed, claim due deliveries up to the free
        capacity."""
        if (
            not self._subs
            or self.clock.monotonic() - self._subs_loaded_at >= _SUBSCRIBERS_MAX_AGE_S
        ):
            await self.refresh_subscribers()
        # Only attempts in flight count against the global budget: a backlog queued for one
        # slow subscriber must never stop claims for the others. Subscribers that already have
        # work queued here, or all their slots busy, are skipped until they catch up.
        free = self.cfg.max_in_flight - self._total
        if free <= 0:
            return
        limit = self.cfg.max_in_flight_per_endpoint
        busy = sorted({sid for sid, n in self._inflight.items() if n >= limit} | set(self._queues))
        claimed = await self.store.claim_due(
            now=self.clock(),
            owner=self.owner,
            lease_s=self.lease_s,
            limit=free,
            handlers=self.bus.names,
            exclude_subscribers=busy,
        )
        self.submit(claimed)
