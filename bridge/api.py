"""The admin REST API (``/api/*``): webhook endpoints (the twin of Payment Kit's
``webhookEndpoints``), events, resend and delivery attempts. Route handlers are thin shims over
:mod:`bridge.endpoints` and the store; bodies are in Payment Kit's shapes
(:mod:`bridge.api_shapes`).

Auth (:mod:`bridge.api_auth`): ``Authorization: Bearer <admin key>``, or a Blocklet component
signature from ``sources.payment_kit.app_public_key`` (how ``@blocklet/payment-js`` calls);
missing or wrong → 401. With neither configured the whole API answers 404: off, never open.

``livemode`` comes from the query string (``?livemode=true|false``, which the SDK adds to every
call): a create under it makes an endpoint of that mode, and list/retrieve/update/delete/rotate
see only that mode's endpoints (another mode's id is 404). A call without it is not restricted
(both modes listed; a create takes ``livemode`` from the body, default false), as before.
A create is idempotent per caller (:mod:`bridge.idempotency`): sent again after a lost answer,
it gets the first endpoint back (``Idempotent-Replayed: true``). A create signed by the app
defaults to ``signature: blocklet`` (what Payment Kit's own deliveries carry), which needs
``sources.payment_kit.app_secret_key``: without it such a create is refused (400) unless it
names another scheme.
Lists answer ``{"count": total, "list": [...]}``; ``page`` starts at 1, ``size`` (alias
``pageSize``) defaults to 20, at most 100.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from bridge import endpoints
from bridge.api_auth import Caller, authenticate, is_component_signed
from bridge.api_models import ResendRequest, RotateRequest, parse_body, parse_json_object
from bridge.api_shapes import attempt_json, endpoint_json, expanded_attempt_json, iso
from bridge.errors import RequestError
from bridge.events import Event
from bridge.store.base import AttemptRecord, Subscriber

if TYPE_CHECKING:
    from bridge.served import ServedBridge

__all__ = ["add_admin_routes", "attempt_json", "endpoint_json", "iso"]

log = logging.getLogger(__name__)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_Guarded = Callable[[web.Request, Caller], Awaitable[web.StreamResponse]]
_RECENT_ATTEMPTS = 20  # attempts shown with a retrieved endpoint


def _json(data: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, content_type="application/json", headers=headers
    )


def _paging(request: web.Request) -> tuple[int, int]:
    q = request.query
    try:
        page = int(q.get("page", "1"))
        size = int(q.get("size", q.get("pageSize", "20")))
    except ValueError:
        raise RequestError("page and size must be integers") from None
    if page < 1 or size < 1:
        raise RequestError("page and size must be at least 1")
    size = min(size, 100)
    return (page - 1) * size, size


def _livemode(request: web.Request) -> bool | None:
    raw = request.query.get("livemode")
    if raw is None or raw == "":
        return None
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise RequestError("livemode must be true or false")


class _Admin:
    def __init__(self, bridge: ServedBridge) -> None:
        self.bridge = bridge
        self.keys = [k.get_secret_value().encode() for k in bridge.config.admin.api_keys]
        pk = bridge.config.sources.payment_kit
        self.app_public_key = pk.app_public_key if pk is not None else None

    def guarded(self, handler: _Guarded) -> _Handler:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            caller = authenticate(
                request.headers,
                method=request.method,
                path=request.rel_url.raw_path,
                query=request.query,
                body=await request.read() if is_component_signed(request.headers) else b"",
                admin_keys=self.keys,
                app_public_key=self.app_public_key,
                now=self.bridge.clock(),
            )
            return await handler(request, caller)

        return wrapper

    def _changed(self) -> None:
        if self.bridge.dispatcher is not None:
            self.bridge.dispatcher.invalidate()

    # -- endpoints: thin shims over bridge.endpoints --------------------------------------------
    async def list_endpoints(self, request: web.Request, _caller: Caller) -> web.Response:
        offset, size = _paging(request)
        page = await endpoints.list_endpoints(
            self.bridge.store, livemode=_livemode(request), offset=offset, limit=size
        )
        return _json({"count": page.count, "list": [endpoint_json(s) for s in page.items]})

    async def create_endpoint(self, request: web.Request, caller: Caller) -> web.Response:
        fields = parse_json_object(await request.read())
        if caller.kind == "app":  # Payment Kit's SDK: sign deliveries as Payment Kit does
            fields.setdefault("signature", "blocklet")
        created = await endpoints.create_endpoint(
            self.bridge.store,
            self.bridge.config,
            fields,
            livemode=_livemode(request),
            caller=caller.id,
            idempotency_key=request.headers.get("Idempotency-Key") or None,
            clock=self.bridge.clock,
        )
        sub = created.endpoint
        if created.replayed:
            log.info("endpoint %s: a repeated create answered with it", sub.id)
            headers = {"Idempotent-Replayed": "true"}
        else:
            self._changed()
            log.info("endpoint %s created via the API (%s)", sub.id, ", ".join(sub.enabled_events))
            headers = None
        return _json(endpoint_json(sub, secret=created.secret), headers=headers)

    async def get_endpoint(self, request: web.Request, _caller: Caller) -> web.Response:
        sub = await endpoints.get_endpoint(
            self.bridge.store, request.match_info["id"], livemode=_livemode(request)
        )
        return _json(await self._expanded(sub))

    async def _expanded(self, sub: Subscriber) -> dict[str, object]:
        """``TWebhookEndpointExpanded``: the endpoint with its most recent attempts."""
        page = await self.bridge.store.list_attempts(subscriber_id=sub.id, limit=_RECENT_ATTEMPTS)
        events = await self._events(page.items)
        shown = endpoint_json(sub)
        attempts = [
            expanded_attempt_json(a, event=events.get(a.event_id), endpoint=shown)
            for a in page.items
        ]
        return {**shown, "attempts": attempts}

    async def _events(self, attempts: list[AttemptRecord]) -> dict[str, Event]:
        found: dict[str, Event] = {}
        for event_id in dict.fromkeys(a.event_id for a in attempts):
            event = await self.bridge.store.get_event(event_id)
            if event is not None:
                found[event_id] = event
        return found

    async def update_endpoint(self, request: web.Request, _caller: Caller) -> web.Response:
        endpoint_id, livemode = request.match_info["id"], _livemode(request)
        # 404 and 409 before the body is looked at
        await endpoints.writable_endpoint(self.bridge.store, endpoint_id, livemode=livemode)
        fields = parse_json_object(await request.read())
        new = await endpoints.update_endpoint(
            self.bridge.store,
            self.bridge.config,
            endpoint_id,
            fields,
            livemode=livemode,
            clock=self.bridge.clock,
        )
        self._changed()
        return _json(endpoint_json(new))

    async def delete_endpoint(self, request: web.Request, _caller: Caller) -> web.Response:
        sub = await endpoints.delete_endpoint(
            self.bridge.store, request.match_info["id"], livemode=_livemode(request)
        )
        self._changed()
        log.info("endpoint %s deleted via the API", sub.id)
        return _json({**endpoint_json(sub), "deleted": True})

    async def rotate_secret(self, request: web.Request, _caller: Caller) -> web.Response:
        endpoint_id, livemode = request.match_info["id"], _livemode(request)
        await endpoints.writable_endpoint(self.bridge.store, endpoint_id, livemode=livemode)
        body = parse_body(RotateRequest, await request.read())
        rotated = await endpoints.rotate_secret(
            self.bridge.store,
            self.bridge.config,
            endpoint_id,
            body.secret,
            livemode=livemode,
            clock=self.bridge.clock,
        )
        self._changed()
        log.info(
            "endpoint %s secret rotated; the old one signs until %s",
            endpoint_id,
            iso(rotated.endpoint.previous_secret_expires_at),
        )
        return _json(endpoint_json(rotated.endpoint, secret=rotated.secret))

    # -- events ---------------------------------------------------------------------------------
    async def list_events(self, request: web.Request, _caller: Caller) -> web.Response:
        offset, size = _paging(request)
        page = await self.bridge.store.list_events(
            type=request.query.get("type") or None, offset=offset, limit=size
        )
        return _json({"count": page.count, "list": [e.model_dump(mode="json") for e in page.items]})

    async def get_event(self, request: web.Request, _caller: Caller) -> web.Response:
        ev = await self.bridge.store.get_event(request.match_info["id"])
        if ev is None:
            raise RequestError("no such event", status=404, error_type="not_found")
        attempts = await self.bridge.store.list_attempts(event_id=ev.id, limit=100)
        shown = [attempt_json(a, livemode=ev.livemode) for a in attempts.items]
        return _json({**ev.model_dump(mode="json"), "attempts": shown})

    async def resend(self, request: web.Request, _caller: Caller) -> web.Response:
        event_id = request.match_info["id"]
        endpoint_id = parse_body(ResendRequest, await request.read()).endpoint_id
        if endpoint_id is not None:
            await endpoints.get_endpoint(self.bridge.store, endpoint_id)
        try:
            ids = await self.bridge.store.resend(
                event_id, now=self.bridge.clock(), subscriber_id=endpoint_id
            )
        except LookupError:
            raise RequestError("no such event", status=404, error_type="not_found") from None
        self._changed()
        log.info("event %s resent: %d deliveries queued", event_id, len(ids))
        return _json({"event_id": event_id, "deliveries": ids})

    async def recover(self, request: web.Request, _caller: Caller) -> web.Response:
        from bridge.recovery import recovery_json

        result = await endpoints.recover_endpoint(
            self.bridge.store,
            request.match_info["id"],
            parse_json_object(await request.read()),
            now=self.bridge.clock(),
            livemode=_livemode(request),
        )
        self._changed()
        return _json(recovery_json(result))

    async def list_attempts(self, request: web.Request, _caller: Caller) -> web.Response:
        offset, size = _paging(request)
        page = await self.bridge.store.list_attempts(
            event_id=request.query.get("event_id") or None,
            subscriber_id=request.query.get("webhook_endpoint_id") or None,
            offset=offset,
            limit=size,
        )
        events = await self._events(page.items)
        shown = [
            attempt_json(a, livemode=e.livemode if (e := events.get(a.event_id)) else None)
            for a in page.items
        ]
        return _json({"count": page.count, "list": shown})


def add_admin_routes(app: web.Application, bridge: ServedBridge) -> None:
    """Mount the admin API under ``/api``."""
    a = _Admin(bridge)
    g = a.guarded
    r = app.router
    r.add_get("/api/webhook-endpoints", g(a.list_endpoints))
    r.add_post("/api/webhook-endpoints", g(a.create_endpoint))
    r.add_get("/api/webhook-endpoints/{id}", g(a.get_endpoint))
    r.add_put("/api/webhook-endpoints/{id}", g(a.update_endpoint))
    r.add_delete("/api/webhook-endpoints/{id}", g(a.delete_endpoint))
    r.add_post("/api/webhook-endpoints/{id}/rotate", g(a.rotate_secret))
    r.add_post("/api/webhook-endpoints/{id}/recover", g(a.recover))
    r.add_get("/api/events", g(a.list_events))
    r.add_get("/api/events/{id}", g(a.get_event))
    r.add_post("/api/events/{id}/resend", g(a.resend))
    r.add_get("/api/webhook-attempts", g(a.list_attempts))
