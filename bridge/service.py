"""The composition root: :class:`Bridge` wires config, store, adapters, bus and dispatcher.

Library use::

    bridge = Bridge.from_config("config.yaml")

    @bridge.bus.on("customer.subscription.started")
    async def grant(event: Event) -> None: ...

    app = bridge.web_app()          # aiohttp Application; its cleanup_ctx starts/stops the bridge

or, without a web server, ``async with bridge: await bridge.ingest("stripe", request)``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from adapters.base import Adapter, InboundRequest, Normalized, ProviderEvent
from bridge.bus import EventBus, HandlerSpec
from bridge.clock import SYSTEM_CLOCK, Clock, as_clock
from bridge.config import Config, EndpointConfig, load_config
from bridge.correlation import Correlator
from bridge.errors import ConfigError, StoreError
from bridge.logs import transition
from bridge.metrics import Metrics
from bridge.reconcile import Reconciler
from bridge.retention import PRUNE_EVERY_S, Pruner
from bridge.store import create_store
from bridge.store.base import Delivery, InboxRecord, IngestResult, Store, Subscriber
from bridge.store.bodies import object_json
from bridge.transport import AiohttpTransport
from bridge.webhook import WebhookSender

if TYPE_CHECKING:
    from aiohttp import web

    from bridge.dispatch import Dispatcher

__all__ = ["Bridge"]

log = logging.getLogger(__name__)


def _owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class Bridge:
    """One paybridge instance. Create with :meth:`from_config` or ``Bridge(config)``."""

    def __init__(
        self,
        config: Config,
        *,
        store: Store | None = None,
        clock: Clock | Callable[[], float] = SYSTEM_CLOCK,
    ) -> None:
        self.config = config
        self.clock = as_clock(clock)
        self.store = (
            store
            if store is not None
            else create_store(config.store.url, sqlite_synchronous=config.store.sqlite_synchronous)
        )
        self.bus = EventBus()
        self.bus.on_change = self._handler_changed
        self.metrics = Metrics()
        self.owner = _owner_id()
        # A lease must outlive one attempt, or a slow attempt could be taken over mid-flight.
        self.lease_s = max(
            config.store.lease_s,
            config.delivery.timeout_s + 5,
            config.bus.handler_timeout_s + 5,
        )
        self.adapters: dict[str, Adapter] = self._make_adapters(config)
        self.dispatcher: Dispatcher | None = None
        self.reconciler: Reconciler | None = None  # sources.stripe.reconcile_every_s
        self._sender: WebhookSender | None = None
        self._transport: AiohttpTransport | None = None
        self._started = False
        self._background: set[asyncio.Task[object]] = set()
        self.correlation = Correlator(
            store=self.store,
            config=config.sources.stripe,
            adapter=self.adapters.get("stripe"),
            owner=self.owner,
            lease_s=self.lease_s,
            metrics=self.metrics,
            submit=self._submit,
            local_handlers=lambda: self.bus.names,
            clock=self.clock,
            poll_interval_s=config.delivery.poll_interval_s,
        )
        self.pruner = Pruner(self.store, config.retention, clock=self.clock, metrics=self.metrics)
        self.prune_every_s = PRUNE_EVERY_S  # how often a started bridge applies retention

    @classmethod
    def from_config(cls, path: str | Path | None = None) -> Bridge:
        """Load the YAML config (see :func:`bridge.config.load_config`); raises ConfigError."""
        return cls(load_config(path))

    @staticmethod
    def _make_adapters(config: Config) -> dict[str, Adapter]:
        adapters: dict[str, Adapter] = {}
        stripe_cfg = config.sources.stripe
        if stripe_cfg is not None:
            from adapters.stripe import StripeAdapter

            adapters["stripe"] = StripeAdapter(
                [s.get_secret_value() for s in stripe_cfg.signing_secrets],
                tolerance_s=stripe_cfg.tolerance_s,
            )
        pk = config.sources.payment_kit
        if pk is not None and (pk.signing_secrets or pk.app_public_key):
            from adapters.payment_kit import PaymentKitAdapter

            adapters["payment_kit"] = PaymentKitAdapter(
                [s.get_secret_value() for s in pk.signing_secrets],
                app_public_key=pk.app_public_key,
                tolerance_s=pk.tolerance_s,
            )
        return adapters

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open the store, apply YAML endpoints and bus handlers, start delivering."""
        if self._started:
            return
        from bridge.dispatch import Dispatcher

        await self.store.open()
        await self._apply_config_endpoints()
        for spec in self.bus.handlers:
            await self._put_handler(spec)
        pk = self.config.sources.payment_kit
        self._transport = AiohttpTransport.from_config(self.config.delivery)
        self._sender = WebhookSender(
            transport=self._transport,
            app_secret_key=(
                pk.app_secret_key.get_secret_value() if pk and pk.app_secret_key else None
            ),
            clock=self.clock,
        )
        self.dispatcher = Dispatcher(
            store=self.store,
            bus=self.bus,
            sender=self._sender,
            delivery=self.config.delivery,
            bus_config=self.config.bus,
            owner=self.owner,
            lease_s=self.lease_s,
            metrics=self.metrics,
            clock=self.clock,
        )
        await self.dispatcher.start()
        await self.correlation.start()
        self._spawn(self.pruner.run_forever(self.prune_every_s))
        self._started = True
        stripe_cfg = self.config.sources.stripe
        if stripe_cfg is not None:  # after _started: its passes go through self.ingest
            self.reconciler = Reconciler(
                self.store,
                stripe_cfg,
                lambda request: self.ingest("stripe", request),
                owner=self.owner,
                clock=self.clock,
            )
            await self.reconciler.start()
        log.info(
            "paybridge started (owner %s, store %s)", self.owner, self.store.__class__.__name__
        )

    async def stop(self) -> None:
        """Stop delivering (in-flight attempts get ``server.shutdown_timeout_s``), release
        leases, close the store. Logs one summary line."""
        if not self._started:
            return
        self._started = False
        summary: dict[str, int] = {}
        if self.reconciler is not None:
            await self.reconciler.stop()
        await self.correlation.stop()
        if self.dispatcher is not None:
            summary = await self.dispatcher.stop(self.config.server.shutdown_timeout_s)
        background = list(self._background)
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if self._transport is not None:
            await self._transport.close()
            self._transport = None
        await self.store.close()
        log.info(
            "paybridge stopped: %d queued deliveries released, %d attempts abandoned in flight",
            summary.get("released", 0),
            summary.get("abandoned_in_flight", 0),
        )

    async def __aenter__(self) -> Bridge:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def web_app(self) -> web.Application:
        """The aiohttp application (ingress, admin API, health, metrics); mount it or run it.
        Its ``cleanup_ctx`` starts and stops this bridge."""
        from bridge.app import create_app

        return create_app(self)

    # -- subscribers ----------------------------------------------------------------------------
    async def _apply_config_endpoints(self) -> None:
        from bridge.errors import UnsafeURLError
        from bridge.ssrf import check_url_syntax

        now = self.clock()
        wanted = {ep.id: ep for ep in self.config.endpoints}
        for ep in self.config.endpoints:
            try:
                check_url_syntax(ep.url)
            except UnsafeURLError as exc:
                raise ConfigError(str(exc), key=f"endpoints[{ep.id}].url") from None
            old = await self.store.get_subscriber(ep.id)
            await self.store.put_subscriber(self._endpoint_from_config(ep, old, now))
        page = await self.store.list_subscribers(kind="endpoint", limit=1_000_000)
        for sub in page.items:
            if sub.created_via == "config" and sub.id not in wanted:
                await self.store.delete_subscriber(sub.id)
                log.info("endpoint %s removed: no longer in the config", sub.id)

    @staticmethod
    def _endpoint_from_config(ep: EndpointConfig, old: Subscriber | None, now: float) -> Subscriber:
        status, reason = ep.status, None
        secret = ep.secret.get_secret_value() if ep.secret else None
        unchanged = old is not None and (
            old.url,
            old.secret,
            old.enabled_events,
            old.signature,
        ) == (
            ep.url,
            secret,
            list(ep.enabled_events),
            ep.signature,
        )
        if unchanged and old is not None and old.status == "disabled" and old.disabled_reason:
            # Disabled by its own failures (410, or failing too long): a restart with the same
            # YAML does not re-enable it; changing its entry (a fixed URL, a new secret) does.
            status, reason = "disabled", old.disabled_reason
            log.warning("endpoint %s stays disabled: %s", ep.id, reason)
        return Subscriber(
            id=ep.id,
            kind="endpoint",
            enabled_events=list(ep.enabled_events),
            status=status,
            disabled_reason=reason,
            url=ep.url,
            signature=ep.signature,
            secret=secret,
            description=ep.description,
            metadata=dict(ep.metadata),
            created_via="config",
            livemode=ep.livemode,
            created_at=old.created_at if old else now,
            updated_at=now,
            failing_since=old.failing_since if old else None,
        )

    async def _put_handler(self, spec: HandlerSpec) -> None:
        now = self.clock()
        old = await self.store.get_subscriber(spec.subscriber_id)
        await self.store.put_subscriber(
            Subscriber(
                id=spec.subscriber_id,
                kind="handler",
                enabled_events=list(spec.patterns),
                created_via="code",
                created_at=old.created_at if old else now,
                updated_at=now,
            )
        )

    def _handler_changed(self, spec: HandlerSpec, removed: bool) -> None:
        if not self._started:
            return  # start() persists every registration
        coro = (
            self.store.delete_subscriber(spec.subscriber_id) if removed else self._put_handler(spec)
        )
        self._spawn(coro)

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(self._invalidate)

    def _invalidate(self, _task: object = None) -> None:
        if self.dispatcher is not None:
            self.dispatcher.invalidate()

    # -- ingress --------------------------------------------------------------------------------
    def adapter(self, provider: str) -> Adapter | None:
        return self.adapters.get(provider)

    async def ingest(self, provider: str, request: InboundRequest) -> IngestResult:
        """Verify, parse, normalize and store one provider request; hand its deliveries to the
        dispatcher. Raises ``SignatureError``/``PayloadError`` (nothing stored), ``StoreError``
        (nothing acked), ``LookupError`` when ``provider`` is not configured."""
        adapter = self.adapters.get(provider)
        if adapter is None:
            raise LookupError(f"source {provider!r} is not configured")
        adapter.verify(request)
        event = adapter.parse(request.body)
        transition(
            log, "received", provider=event.provider, provider_event_id=event.id, type=event.type
        )
        # Before normalizing: the object exactly as parsed from the stored raw body.
        shared = object_json(event.payload) if event.provider == "stripe" else None
        normalized = adapter.normalize(event)
        normalized.share_object(event.payload, shared)
        if self.correlation.wants_fetch(event.shape):
            normalized.fetch_related, normalized.ignored_reason = True, None
        return await self._store(event, normalized, request.body, request.received_at, shared)

    async def _store(
        self,
        event: ProviderEvent,
        normalized: Normalized,
        raw: bytes,
        received_at: float,
        shared: bytes | None,
    ) -> IngestResult:
        if not self._started:
            raise StoreError("paybridge is not started")
        result = await self.store.ingest(
            InboxRecord(event.provider, event.id, event.type, received_at, raw, shared),
            normalized,
            now=self.clock(),
            correlation_window_s=self.correlation.window_s,
            owner=self.owner,
            lease_s=self.lease_s,
            local_handlers=self.bus.names,
            lookups=self.correlation.lookups,
        )
        outcome = (
            "duplicate"
            if result.duplicate
            else "pending_fetch"
            if normalized.fetch_related
            else "ignored"
            if normalized.produces_nothing
            else "stored"
        )
        self.metrics.child(self.metrics.inbound, event.provider, outcome).inc()
        _log_ingested(event, normalized, result)
        for ev in result.events:
            self.metrics.child(self.metrics.events, ev.type).inc()
        self._submit(result.deliveries)
        if event.provider == "stripe":
            self.correlation.noticed(event.type, result, normalized)
        return result

    def _submit(self, deliveries: list[Delivery]) -> None:
        if self.dispatcher is not None:
            self.dispatcher.submit(deliveries)


def _log_ingested(event: ProviderEvent, normalized: Normalized, result: IngestResult) -> None:
    """The transition one stored provider request made: a duplicate, ignored, waiting for a
    fetch, or stored, with one ``stored`` line per canonical event naming its subscribers."""
    ids = {"provider": event.provider, "provider_event_id": event.id}
    if result.duplicate:
        transition(log, "duplicate", **ids)
    elif normalized.fetch_related:
        transition(log, "fetch_scheduled", **ids)
    elif normalized.produces_nothing:
        transition(log, "ignored", **ids, type=event.type, reason=normalized.ignored_reason)
    elif not result.events:  # PaymentIntent decisions held or dropped, links stored
        transition(log, "stored", **ids, events=0, held=result.held, dropped=result.dropped)
    for ev in result.events:
        subscribers = [d.subscriber_id for d in result.deliveries if d.event.id == ev.id]
        transition(log, "stored", **ids, event_id=ev.id, type=ev.type, subscribers=subscribers)
