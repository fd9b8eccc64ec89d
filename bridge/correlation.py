"""Stripe correlation: the one owner of held PaymentIntent outcomes, ``invoice_payments``
look-ups and thin-event fetches. Everything here runs after the ack, as durable leased steps
(a crash only delays them); the decisions themselves are :mod:`bridge.holds`' pure functions,
applied by the store inside its transactions.

With ``sources.stripe.api_key`` a held basil PaymentIntent is looked up as soon as it is stored
(failed look-ups retried with backoff inside the window), and thin events get their related
object fetched. Without a key, or when every look-up failed, the window's end decides on what
the store has seen: a link, else a matching invoice payment, else the PI pays no invoice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bridge.clock import Clock
from bridge.errors import StoreError
from bridge.holds import Answer, Hold, Verdict, next_check_at
from bridge.logs import transition
from bridge.metrics import Metrics
from bridge.normalized import Normalized
from bridge.store.base import Delivery, InboxRecord, IngestResult, Store

if TYPE_CHECKING:
    import aiohttp
    import stripe

    from adapters.base import Adapter
    from bridge.config import StripeSourceConfig

__all__ = ["MATCH_WARNING_EVERY_S", "Correlator"]

log = logging.getLogger(__name__)

MATCH_WARNING_EVERY_S = 3600.0
_CLAIM_LIMIT = 20
_EXACT_HOW = (
    "subscribe the Stripe endpoint to invoice_payment.paid, or set sources.stripe.api_key to a "
    "restricted key with the Invoices: Read permission (invoice_read)"
)


class Correlator:
    """See the module docstring. ``submit`` hands new deliveries to the dispatcher;
    ``local_handlers`` names the bus handlers of this process; ``clock`` gives unix seconds."""

    def __init__(
        self,
        *,
        store: Store,
        config: StripeSourceConfig | None,
        adapter: Adapter | None,
        owner: str,
        lease_s: float,
        metrics: Metrics,
        submit: Callable[[list[Delivery]], None],
        local_handlers: Callable[[], Sequence[str]],
        clock: Clock,
        poll_interval_s: float = 1.0,
    ) -> None:
        self.store, self.config, self.adapter = store, config, adapter
        self.owner, self.lease_s, self.metrics = owner, lease_s, metrics
        self.submit, self.local_handlers, self.clock = submit, local_handlers, clock
        self.poll_interval_s = poll_interval_s
        self.window_s = config.correlation_window_s if config is not None else 120.0
        self._client: stripe.StripeClient | None = None
        self._http: aiohttp.ClientSession | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._setup_check: asyncio.Task[None] | None = None
        self._stopping = False
        self._invoice_payment_seen = False
        self._match_warned_at: float | None = None
        self._forgotten_at: float | None = None  # when old invoice payments were last deleted

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def lookups(self) -> bool:
        """Whether Stripe can be asked (an API key is configured and the client is open)."""
        return self._client is not None

    async def start(self) -> None:
        """Open the Stripe client (with an API key), say how PaymentIntents will be decided,
        start the loop."""
        cfg = self.config
        if cfg is not None and cfg.api_key is not None:
            import aiohttp

            from adapters.stripe_api import make_client

            self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
            self._client = make_client(
                cfg.api_key.get_secret_value(), cfg.api_base, session=self._http
            )
        elif cfg is not None:
            log.warning(
                "sources.stripe.api_key is not set: one-time PaymentIntents on basil "
                "(2025-03-31) and later API versions are decided only after correlation_window_s "
                "(%g s); a restricted key with the Invoices: Read permission (invoice_read) "
                "decides them within seconds",
                self.window_s,
            )
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="paybridge-correlation")
        if self._client is not None:
            self._setup_check = asyncio.create_task(self._check_setup(self._client))

    async def stop(self, grace_s: float = 1.0) -> None:
        """Stop the loop, letting a round in progress finish for up to ``grace_s`` (a step
        still running then is cancelled: its lease expires and it is redone), and close the
        Stripe client."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=grace_s)
        for task in (self._task, self._setup_check):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._setup_check = None
        if self._http is not None:
            await self._http.close()
        self._http = self._client = None

    @staticmethod
    async def _check_setup(client: stripe.StripeClient) -> None:
        """Warn at start-up about webhook endpoints that do not send what paybridge needs
        (the report of ``paybridge check --stripe``)."""
        from adapters.stripe_setup import check_endpoints

        try:
            reports = await check_endpoints(client)
        except Exception as exc:  # a key without Webhook Endpoints: Read, Stripe unreachable
            log.warning("Stripe webhook endpoints not checked (%s)", type(exc).__name__)
            return
        if not reports:
            log.warning("no Stripe webhook endpoint ends in /webhooks/stripe: see check --stripe")
        for report in reports:
            if report.missing:
                log.warning("; ".join(line.strip() for line in report.lines()))

    def wake(self) -> None:
        """Look at due holds and pending fetches now rather than at the next poll."""
        self._wake.set()

    def noticed(self, event_type: str, result: IngestResult, normalized: Normalized) -> None:
        """Called after each ingest: learn whether the endpoint sends ``invoice_payment.paid``,
        and wake the loop when a look-up or a fetch is due at once."""
        if event_type == "invoice_payment.paid":
            self._invoice_payment_seen = True
        if result.duplicate:
            return
        if (result.held and self.lookups) or normalized.fetch_related:
            self.wake()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.tick()
            except StoreError as exc:
                log.warning("correlation: store unavailable: %s", exc)
            except Exception:
                log.exception("correlation tick failed")
            await self.clock.wait(self._wake, self.poll_interval_s)
            self._wake.clear()

    async def tick(self) -> None:
        """One round: decide or look up the holds that are due, fetch pending thin events,
        refresh the held-decision gauges."""
        await asyncio.gather(self.decide_due(), self.fetch_pending())
        now = self.clock()
        waiting, oldest = await self.store.held_summary()
        self.metrics.held_waiting.set(waiting)
        self.metrics.held_oldest.set(0.0 if oldest is None else max(0.0, now - oldest))
        if self._forgotten_at is None or now - self._forgotten_at >= self.window_s:
            self._forgotten_at = now
            # A hold matches invoice payments seen from one window before it was held.
            await self.store.forget_invoice_payments(
                seen_before=min(now, oldest if oldest is not None else now) - self.window_s
            )

    # -- held PaymentIntents --------------------------------------------------------------------
    async def decide_due(self) -> int:
        """Look at every hold due now (look-up, or the window's end); returns how many."""
        due = await self.store.claim_holds(
            now=self.clock(), owner=self.owner, lease_s=self.lease_s, limit=_CLAIM_LIMIT
        )
        await asyncio.gather(*(self._look_at(hold) for hold in due))
        return len(due)

    async def _ask(self, pi: str) -> Answer | None:
        """Stripe's answer for ``pi``, or None (no key, or the look-up failed)."""
        client = self._client
        if client is None:
            return None
        from adapters.stripe_api import find_invoice_for_payment_intent

        try:
            return Answer(await find_invoice_for_payment_intent(client, pi))
        except Exception as exc:  # network, auth, rate limit: retried, then the window decides
            log.warning("invoice look-up for %s failed (%s)", pi, type(exc).__name__)
            return None

    async def _look_at(self, hold: Hold) -> None:
        answer = await self._ask(hold.payment_intent)
        now = self.clock()
        if answer is None and now < hold.decide_at:
            again = next_check_at(hold, now, lookup_failed=self.lookups)
            await self.store.retry_hold(hold.id, next_check_at=again, owner=self.owner)
            return
        res = await self.store.resolve_hold(
            hold.id,
            answer=answer,
            now=now,
            owner=self.owner,
            lease_s=self.lease_s,
            local_handlers=self.local_handlers(),
        )
        if res.verdict is not None:
            self._decided(hold, res, res.verdict, now)
        self._hand_over(res)

    def _decided(self, hold: Hold, res: IngestResult, verdict: Verdict, now: float) -> None:
        outcome = "emitted" if verdict.emit else "dropped"
        age_s = max(0.0, now - hold.held_at)
        self.metrics.child(self.metrics.held_decisions, outcome, verdict.basis).observe(age_s)
        transition(
            log,
            "held_decided",
            payment_intent=hold.payment_intent,
            outcome=outcome,
            basis=verdict.basis,
            invoice=verdict.link.invoice if verdict.link else None,
            held_s=round(age_s, 1),
        )
        if verdict.basis in ("match", "no_match"):
            self._warn_match(now)

    def _warn_match(self, now: float) -> None:
        """Once an hour while decisions rest on the customer/amount/currency match alone."""
        if self.lookups or self._invoice_payment_seen:
            return
        if self._match_warned_at is not None and now - self._match_warned_at < (
            MATCH_WARNING_EVERY_S
        ):
            return
        self._match_warned_at = now
        log.warning(
            "basil PaymentIntents are being matched to invoices by customer, amount and currency "
            "(no API key, and no invoice_payment.paid received): two payments of the same amount "
            "by one customer within correlation_window_s cannot be told apart. To make these "
            "decisions exact, %s",
            _EXACT_HOW,
        )

    def _hand_over(self, res: IngestResult) -> None:
        for ev in res.events:
            self.metrics.child(self.metrics.events, ev.type).inc()
        self.submit(res.deliveries)

    # -- thin events ----------------------------------------------------------------------------
    def wants_fetch(self, shape: str) -> bool:
        """Whether an event of this shape gets its related object fetched (thin events, with
        an API key)."""
        return shape == "thin" and self.lookups

    async def fetch_pending(self, limit: int = _CLAIM_LIMIT) -> int:
        """Fetch the related objects of stored thin events and ingest the snapshots (leased,
        so a crash only delays it). Returns how many were completed."""
        client = self._client
        if client is None:
            return 0
        pending = await self.store.claim_pending_fetches(
            now=self.clock(), owner=self.owner, lease_s=self.lease_s, limit=limit
        )
        done = 0
        for record in pending:
            done += await self._fetch_one(client, record)
        return done

    async def _fetch_one(self, client: stripe.StripeClient, record: InboxRecord) -> int:
        import orjson
        import stripe as stripe_lib

        from adapters.stripe import snapshot_from_thin
        from adapters.stripe_api import fetch_related_object
        from bridge.store.bodies import object_json

        assert self.adapter is not None  # a client exists only with a Stripe source
        thin = self.adapter.parse(record.payload)
        try:
            obj = await fetch_related_object(client, thin.payload)
        except stripe_lib.InvalidRequestError as exc:  # gone or never there: final
            log.warning("thin event %s: related object not found: %s", thin.id, exc.user_message)
            obj = None
        except Exception as exc:  # network, auth, rate limit: retried when the lease expires
            log.warning("thin event %s: fetch failed (%s); will retry", thin.id, type(exc).__name__)
            return 0
        shared = None
        if obj is None:
            snap = thin
            payload = orjson.dumps(snap.payload)
            normalized = Normalized(ignored_reason=f"thin event {thin.id}: no related object")
        else:
            snap = snapshot_from_thin(thin, obj)
            # Before normalizing: what is stored, and its object, exactly as fetched.
            payload, shared = orjson.dumps(snap.payload), object_json(snap.payload)
            normalized = self.adapter.normalize(snap)
            normalized.share_object(snap.payload, shared)
        fetched = InboxRecord(
            "stripe", f"{thin.id}:fetched", snap.type, self.clock(), payload, shared
        )
        result = await self.store.complete_fetch(
            record,
            fetched,
            normalized,
            now=self.clock(),
            correlation_window_s=self.window_s,
            owner=self.owner,
            lease_s=self.lease_s,
            local_handlers=self.local_handlers(),
            lookups=self.lookups,
        )
        self._hand_over(result)
        if result.held:
            self.wake()
        return 0 if result.duplicate else 1
