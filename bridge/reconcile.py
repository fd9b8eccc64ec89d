"""Reconcile: catch the Stripe events the service never received (an outage longer than
Stripe's 3-day retry window, an endpoint misconfigured for a while).

Events are listed from Stripe's Events API (``GET /v1/events?created[gte]=…``, newest first,
page by page) through stripe-python's async client at ``sources.stripe.api_base``, and each
one goes through the normal ingest path (verification, deduplication, normalization): events
the service already has are duplicates and change nothing.

- ``paybridge reconcile --since 3d`` posts each event, signed with the configured Stripe
  secret, to the running service's own ingress, showing progress on a terminal.
- With ``sources.stripe.reconcile_every_s`` the service does it itself (:class:`Reconciler`):
  one pass per period across every instance sharing the store (a job lease in the store), from
  the checkpoint the last complete pass stored, never further back than Stripe keeps events.

The decisions (when a pass is due, from where it lists) are pure functions of the checkpoint
and the time; the I/O is at the edges (the Stripe client, the feed, the store's job lease).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TextIO

import aiohttp
import orjson
from multidict import CIMultiDict

from adapters.base import InboundRequest
from bridge.clock import SYSTEM_CLOCK, Clock, as_clock
from bridge.config import Config, StripeSourceConfig
from bridge.errors import InboundError
from bridge.logs import transition
from bridge.signing import sign_timestamped_hmac
from bridge.since import parse_duration_s

if TYPE_CHECKING:
    import stripe

    from bridge.store.base import IngestResult, Store

__all__ = [
    "JOB",
    "Checkpoint",
    "ReconcileReport",
    "Reconciler",
    "list_events",
    "pass_start",
    "reconcile",
    "run_reconcile",
]

log = logging.getLogger(__name__)

JOB = "reconcile:stripe"
STRIPE_EVENTS_KEPT_S = 30 * 86400  # Stripe's Events API lists the last 30 days
_KEPT_MARGIN_S = 3600  # ask a little inside it: its edge moves while a pass runs
OVERLAP_S = 300  # list again what the last pass may have missed at its edge
FIRST_LOOKBACK_S = 3 * 86400  # no checkpoint yet: Stripe's retry window
_PAGE = 100
Outcome = Literal["new", "duplicate", "failed"]
Feed = Callable[[bytes], Awaitable[Outcome]]
Progress = Callable[["ReconcileReport"], Awaitable[None]]


@dataclass
class ReconcileReport:
    """What one pass did."""

    listed: int = 0
    new: int = 0
    duplicates: int = 0
    failed: int = 0

    def count(self, outcome: Outcome) -> None:
        self.listed += 1
        if outcome == "new":
            self.new += 1
        elif outcome == "duplicate":
            self.duplicates += 1
        else:
            self.failed += 1

    def summary(self) -> str:
        return (
            f"{self.listed} listed, {self.new} new, {self.duplicates} already stored, "
            f"{self.failed} failed"
        )


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where the last complete pass got to: it listed everything created before ``through``
    and finished at ``finished_at`` (unix seconds)."""

    through: float
    finished_at: float

    def dumps(self) -> str:
        return orjson.dumps({"through": self.through, "finished_at": self.finished_at}).decode()

    @classmethod
    def loads(cls, text: str | None) -> Checkpoint | None:
        """The stored checkpoint, or None (none yet, or unreadable: start over)."""
        if not text:
            return None
        try:
            data = orjson.loads(text)
            return cls(float(data["through"]), float(data["finished_at"]))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None


def pass_start(checkpoint: Checkpoint | None, *, now: float, every_s: float) -> float | None:
    """``created[gte]`` for a pass starting ``now``, or None when the last pass finished less
    than ``every_s`` ago. From the checkpoint (less an overlap), else the last 3 days; never
    before what Stripe still lists."""
    if checkpoint is not None and now - checkpoint.finished_at < every_s:
        return None
    start = checkpoint.through - OVERLAP_S if checkpoint else now - FIRST_LOOKBACK_S
    return max(start, now - STRIPE_EVENTS_KEPT_S + _KEPT_MARGIN_S)


async def list_events(client: stripe.StripeClient, gte: float) -> AsyncIterator[bytes]:
    """Every event created at or after ``gte``, as JSON, newest first, page after page.

    Raises:
        stripe.StripeError: the API refused a call or could not be reached.
    """
    page = await client.v1.events.list_async(params={"created": {"gte": int(gte)}, "limit": _PAGE})
    async for event in page.auto_paging_iter():
        yield orjson.dumps(event.to_dict(for_json=True))


async def _run_pass(
    client: stripe.StripeClient, gte: float, feed: Feed, progress: Progress | None
) -> ReconcileReport:
    report = ReconcileReport()
    async for body in list_events(client, gte):
        report.count(await feed(body))
        if progress is not None:
            await progress(report)
    return report


# -- the CLI: through the running service's ingress ---------------------------------------------
def _stripe_settings(cfg: Config) -> tuple[StripeSourceConfig, str]:
    stripe_cfg = cfg.sources.stripe
    if stripe_cfg is None or stripe_cfg.api_key is None:
        raise ValueError("reconcile needs sources.stripe.api_key")
    return stripe_cfg, stripe_cfg.api_key.get_secret_value()


def _poster(session: aiohttp.ClientSession, to: str, secret: str) -> Feed:
    async def post(body: bytes) -> Outcome:
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": sign_timestamped_hmac(body, [secret], int(time.time())),
        }
        async with session.post(to, data=body, headers=headers) as resp:
            if resp.status != 200:
                return "failed"
            answer = await resp.json()
        return "duplicate" if answer.get("duplicate") else "new"

    return post


async def reconcile(
    cfg: Config,
    *,
    since_s: int,
    to: str,
    now: float | None = None,
    progress: Progress | None = None,
) -> ReconcileReport:
    """List Stripe events created in the last ``since_s`` seconds and post each to ``to``.

    Raises ValueError when no Stripe source with an ``api_key`` is configured, and
    ``stripe.StripeError`` when the Events API fails."""
    from adapters.stripe_api import make_client

    stripe_cfg, api_key = _stripe_settings(cfg)
    secret = stripe_cfg.signing_secrets[0].get_secret_value()
    gte = (time.time() if now is None else now) - since_s
    async with aiohttp.ClientSession() as session:
        client = make_client(api_key, stripe_cfg.api_base, session=session)
        return await _run_pass(client, gte, _poster(session, to, secret), progress)


class _TerminalProgress:
    """The running counts redrawn in place on a terminal, at most every 0.1 s."""

    def __init__(self, err: TextIO) -> None:
        self._err = err
        self._shown_at: float | None = None

    async def update(self, report: ReconcileReport) -> None:
        now = time.monotonic()
        if self._shown_at is None or now - self._shown_at >= 0.1:
            self._shown_at = now
            self._err.write(f"\rreconcile: {report.summary()}")
            self._err.flush()

    def done(self, report: ReconcileReport | None) -> None:
        if report is not None:
            self._err.write(f"\rreconcile: {report.summary()}")
        if self._shown_at is not None or report is not None:
            self._err.write("\n")
        self._err.flush()


def run_reconcile(
    cfg: Config, *, since: str, to: str, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """The CLI command: progress on a terminal, one summary line; returns the exit status."""
    out, err = out or sys.stdout, err or sys.stderr
    progress = _TerminalProgress(err) if err.isatty() else None
    report: ReconcileReport | None = None
    try:
        since_s = parse_duration_s(since)
        report = asyncio.run(
            reconcile(cfg, since_s=since_s, to=to, progress=progress.update if progress else None)
        )
    except (ValueError, OSError) as exc:
        problem = str(exc)
    except Exception as exc:  # stripe.StripeError and friends: say what failed, no traceback
        problem = f"Stripe API call failed: {type(exc).__name__}: {exc}"
    finally:
        if progress is not None:
            progress.done(report)
    if report is None:
        print(f"reconcile: {problem}", file=err)
        return 1
    print(f"reconciled: {report.summary()}", file=out)
    return 1 if report.failed else 0


# -- inside the service: scheduled, one instance at a time --------------------------------------
class Reconciler:
    """``serve``'s scheduled reconcile: every ``sources.stripe.reconcile_every_s`` an instance
    takes the store's job lease, lists from the checkpoint and feeds each event to ``ingest``
    (the service's own ingest of a Stripe request, signed here with the configured secret).
    A failing Stripe API or store leaves the checkpoint where it was: the next period lists
    the same span again.
    """

    def __init__(
        self,
        store: Store,
        cfg: StripeSourceConfig,
        ingest: Callable[[InboundRequest], Awaitable[IngestResult]],
        *,
        owner: str,
        clock: Clock | Callable[[], float] = SYSTEM_CLOCK,
    ) -> None:
        self._store, self._cfg, self._ingest = store, cfg, ingest
        self._owner, self._clock = owner, as_clock(clock)
        self.every_s = cfg.reconcile_every_s
        self._lease_s = max(120.0, (self.every_s or 0) / 2)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the period loop when reconcile is on and an API key is set."""
        if not self.every_s:
            return
        if self._cfg.api_key is None:
            log.warning("sources.stripe.reconcile_every_s is set but api_key is not: no reconcile")
            return
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        assert self.every_s
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # logged, retried next period: the loop must survive
                transition(log, "reconcile_failed", error=f"{type(exc).__name__}: {exc}")
            await self._clock.sleep(self.every_s)

    async def _pass(self, gte: float) -> ReconcileReport:
        from adapters.stripe_api import make_client

        assert self._cfg.api_key is not None
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            client = make_client(
                self._cfg.api_key.get_secret_value(), self._cfg.api_base, session=session
            )
            return await _run_pass(client, gte, self._feed, self._renew)

    async def run_once(self) -> ReconcileReport | None:
        """One pass if this instance gets the lease and one is due; None otherwise.

        Raises:
            stripe.StripeError: the Events API failed (the checkpoint is left as it was).
            StoreError: the store failed.
        """
        now = self._clock()
        lease = await self._store.acquire_job(
            JOB, owner=self._owner, now=now, lease_s=self._lease_s
        )
        if lease is None:
            return None
        try:
            checkpoint = Checkpoint.loads(lease.checkpoint)
            gte = pass_start(checkpoint, now=now, every_s=self.every_s or 0)
            if gte is None:
                return None
            transition(log, "reconcile_started", created_gte=int(gte))
            report = await self._pass(gte)
            done = Checkpoint(through=now, finished_at=self._clock())
            saved = await self._store.save_job(
                JOB,
                owner=self._owner,
                checkpoint=done.dumps(),
                now=self._clock(),
                lease_s=self._lease_s,
            )
            transition(
                log,
                "reconcile_finished",
                listed=report.listed,
                new=report.new,
                duplicates=report.duplicates,
                failed=report.failed,
                checkpoint_saved=saved,
            )
            return report
        finally:
            await self._store.release_job(JOB, owner=self._owner)

    async def _feed(self, body: bytes) -> Outcome:
        now = self._clock()
        secret = self._cfg.signing_secrets[0].get_secret_value()
        headers = CIMultiDict(
            {
                "Content-Type": "application/json",
                "Stripe-Signature": sign_timestamped_hmac(body, [secret], int(now)),
            }
        )
        request = InboundRequest("POST", "/webhooks/stripe", {}, headers, body, now)
        try:
            result = await self._ingest(request)
        except InboundError as exc:  # an event the adapter refuses: count it, go on
            transition(log, "reconcile_event_refused", error=str(exc))
            return "failed"
        return "duplicate" if result.duplicate else "new"

    async def _renew(self, report: ReconcileReport) -> None:
        """Extend the lease every page; a lost lease (another instance took over) stops."""
        if report.listed % _PAGE:
            return
        kept = await self._store.save_job(
            JOB, owner=self._owner, checkpoint=None, now=self._clock(), lease_s=self._lease_s
        )
        if not kept:
            raise RuntimeError("reconcile lease lost to another instance")
