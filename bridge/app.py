"""The aiohttp application: provider ingress, health, metrics, openevent, admin API, console.

Route handlers are thin shims over the running bridge (:mod:`bridge.served`); one middleware maps
:mod:`bridge.errors` to HTTP statuses and JSON error bodies ``{"error": {"type", "message"}}``.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import orjson
from aiohttp import hdrs, web

from adapters.base import InboundRequest
from bridge.errors import BridgeError, PayloadTooLargeError, StoreError

if TYPE_CHECKING:
    from bridge.served import ServedBridge

__all__ = [
    "BRIDGE_KEY",
    "create_app",
    "error_response",
    "freeze_gc_after_startup",
]

log = logging.getLogger(__name__)

BRIDGE_KEY: web.AppKey[ServedBridge] = web.AppKey("paybridge.bridge")
_GC_YOUNG_THRESHOLD = 20_000  # see freeze_gc_after_startup
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, error_type: str, message: str) -> web.Response:
    """The JSON error every route answers with: ``{"error": {"type", "message"}}``."""
    return web.Response(
        body=orjson.dumps({"error": {"type": error_type, "message": message}}),
        status=status,
        content_type="application/json",
        charset="utf-8",
    )


def _dumps(obj: object) -> str:
    return orjson.dumps(obj).decode()


@web.middleware
async def _errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BridgeError as exc:
        if isinstance(exc, StoreError):
            log.warning("%s %s: store unavailable: %s", request.method, request.path, exc)
            return error_response(503, exc.error_type, "store unavailable; retry later")
        return error_response(exc.status, exc.error_type, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, "http_error", exc.reason)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal_error", "internal error")


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The body, refused (413) past ``limit`` bytes whether or not a Content-Length says so."""
    length = request.content_length
    if length is not None:
        if length > limit:
            raise PayloadTooLargeError(f"body over {limit} bytes")
        if not length:
            return b""  # readexactly(0) of an empty body raises IncompleteReadError
        if hdrs.CONTENT_ENCODING not in request.headers:
            # Exactly the announced bytes, in one read (request.read() loops and copies twice).
            return await request.content.readexactly(length)
        return await request.read()  # aiohttp inflates it and holds it to client_max_size
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _inbound(provider: str) -> _Handler:
    """The route of one provider: read the body within the limit, ingest, answer 200 with what
    was stored (errors go to :func:`_errors`; a refused request counts as rejected)."""

    async def handle(request: web.Request) -> web.Response:
        bridge = request.app[BRIDGE_KEY]
        if bridge.adapter(provider) is None:
            return error_response(404, "not_found", f"source {provider} is not configured")
        body = await _read_body(request, bridge.config.server.max_body_bytes)
        inbound = InboundRequest(
            method=request.method,
            path=request.rel_url.raw_path,
            query=dict(request.query),
            headers=request.headers,
            body=body,
            received_at=bridge.clock(),
        )
        try:
            result = await bridge.ingest(provider, inbound)
        except BridgeError as exc:
            if not isinstance(exc, StoreError):
                bridge.metrics.child(bridge.metrics.inbound, provider, "rejected").inc()
            raise
        reply = {
            "received": True,
            "duplicate": result.duplicate,
            "events": [e.id for e in result.events],
        }
        return web.Response(
            body=orjson.dumps(reply), content_type="application/json", charset="utf-8"
        )

    return handle


async def _healthz(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE_KEY]
    try:
        counts = await bridge.store.counts()
    except StoreError as exc:
        return web.json_response({"status": "unavailable", "error": str(exc)}, status=503)
    return web.json_response({"status": "ok", "store": counts}, dumps=_dumps)


async def _metrics(request: web.Request) -> web.Response:
    bridge = request.app[BRIDGE_KEY]
    try:
        bridge.metrics.owed.observe(await bridge.store.delivery_stats(), now=bridge.clock())
    except StoreError as exc:
        bridge.metrics.owed.store_down()
        log.warning("metrics: store unavailable: %s", exc)
    return web.Response(body=bridge.metrics.render(), content_type="text/plain", charset="utf-8")


async def _openevent(request: web.Request) -> web.Response:
    from bridge.openevent import openevent_document

    return web.json_response(openevent_document(), dumps=_dumps)


def create_app(bridge: ServedBridge) -> web.Application:
    """Build the application for ``bridge``; its cleanup context starts and stops it."""
    from bridge.api import add_admin_routes
    from bridge.console import add_console_routes

    # Ingress enforces server.max_body_bytes itself (413 with a JSON body); the admin API
    # bodies are small, aiohttp's own limit covers them.
    app = web.Application(
        middlewares=[_errors], client_max_size=bridge.config.server.max_body_bytes
    )
    app[BRIDGE_KEY] = bridge
    app.router.add_post("/webhooks/stripe", _inbound("stripe"))
    app.router.add_post("/webhooks/payment-kit", _inbound("payment_kit"))
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/.well-known/service/openevent.json", _openevent)
    add_admin_routes(app, bridge)
    add_console_routes(app, bridge)

    async def lifecycle(_app: web.Application) -> AsyncIterator[None]:
        await bridge.start()
        yield
        await bridge.stop()

    app.cleanup_ctx.append(lifecycle)
    return app


def freeze_gc_after_startup(app: web.Application) -> None:
    """Once ``app`` has started, move everything loaded so far (modules, pydantic and stripe
    internals, config) out of the garbage collector's generations with :func:`gc.freeze`, and
    collect the young generation every 20,000 new container objects instead of every 700.

    What start-up loaded lives as long as the process; left in place, every full collection
    walks it again and stalls the event loop for tens of milliseconds. A request's objects are
    freed by reference counting, so frequent young collections find almost nothing (figures in
    bench/PERFORMANCE.md, "Measurements behind the code"). ``paybridge serve`` does this; an
    application embedding paybridge can call it on its own app, last."""

    async def freeze(_app: web.Application) -> None:
        gc.collect()
        gc.freeze()
        gc.set_threshold(_GC_YOUNG_THRESHOLD, 20, 20)

    app.on_startup.append(freeze)
