"""The admin REST API (``/api/*``): webhook endpoints (Payment Kit's ``webhookEndpoints``
shape), events, resend and delivery attempts.

Auth: ``Authorization: Bearer <key>`` checked in constant time against ``admin.api_keys``;
missing or wrong → 401. With no key configured the whole API answers 404: off, never open.
Lists answer ``{"count": total, "list": [...]}``; ``page`` starts at 1, ``size`` (alias
``pageSize``) defaults to 20, at most 100.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from bridge import endpoints
from bridge.api_models import ResendRequest, RotateRequest, parse_body, parse_json_object
from bridge.errors import RequestError
from bridge.store.base import AttemptRecord, Subscriber

if TYPE_CHECKING:
    from bridge.service import Bridge

__all__ = ["add_admin_routes", "attempt_json", "endpoint_json", "iso"]

log = logging.getLogger(__name__)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def iso(ts: float | None) -> str | None:
    """Unix seconds → ISO 8601 UTC (Payment Kit's timestamp format)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def endpoint_json(s: Subscriber, *, secret: str | None = None) -> dict[str, Any]:
    """The API shape of an endpoint; ``secret`` only on create and rotate."""
    out: dict[str, Any] = {
        "id": s.id,
        "object": "webhook_endpoint",
        "url": s.url,
        "enabled_events": s.enabled_events,
        "status": s.status,
        "description": s.description,
        "metadata": s.metadata,
        "signature": s.signature,
        "livemode": s.livemode,
        "api_version": s.api_version,
        "created_via": s.created_via,
        "created_at": iso(s.created_at),
        "updated_at": iso(s.updated_at),
        "disabled_reason": s.disabled_reason,
    }
    if secret is not None:
        out["secret"] = secret
    return out


def attempt_json(a: AttemptRecord) -> dict[str, Any]:
    """A delivery attempt in Payment Kit's ``WebhookAttempt`` shape (plus timing fields)."""
    return {
        "id": f"wha_{a.id}",
        "object": "webhook_attempt",
        "event_id": a.event_id,
        "webhook_endpoint_id": a.subscriber_id,
        "delivery_id": a.delivery_id,
        "status": a.status,
        "response_status": a.status_code,
        "response_body": a.response_body,
        "retry_count": a.attempt - 1,
        "attempt": a.attempt,
        "error": a.error,
        "duration_ms": a.duration_ms,
        "delivery_status": a.delivery_status,
        "created_at": iso(a.started_at),
        "finished_at": iso(a.finished_at),
    }


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
    def __init__(self, bridge: Bridge) -> None:
        self.bridge = bridge
        self.keys = [k.get_secret_value().encode() for k in bridge.config.admin.api_keys]

    def guarded(self, handler: _Handler) -> _Handler:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            if not self.keys:
                raise RequestError("not found", status=404, error_type="not_found")
            auth = request.headers.get("Authorization", "")
            scheme, _, token = auth.partition(" ")
            given = token.strip().encode()
            ok = False
            for key in self.keys:  # every key compared: timing reveals nothing
                ok |= hmac.compare_digest(given, key)
            if scheme.lower() != "bearer" or not given or not ok:
                raise RequestError(
                    "missing or invalid admin API key", status=401, error_type="unauthorized"
                )
            return await handler(request)

        return wrapper

    def _changed(self) -> None:
        if self.bridge.dispatcher is not None:
            self.bridge.dispatcher.invalidate()

    # -- endpoints: thin shims over bridge.endpoints --------------------------------------------
    async def list_endpoints(self, request: web.Request) -> web.Response:
        offset, size = _paging(request)
        page = await endpoints.list_endpoints(
            self.bridge.store, livemode=_livemode(request), offset=offset, limit=size
        )
        return _json({"count": page.count, "list": [endpoint_json(s) for s in page.items]})

    async def create_endpoint(self, request: web.Request) -> web.Response:
        fields = parse_json_object(await request.read())
        created = await endpoints.create_endpoint(
            self.bridge.store, self.bridge.config, fields, clock=self.bridge.clock
        )
        self._changed()
        sub = created.endpoint
        log.info("endpoint %s created via the API (%s)", sub.id, ", ".join(sub.enabled_events))
        return _json(endpoint_json(sub, secret=created.secret))

    async def get_endpoint(self, request: web.Request) -> web.Response:
        sub = await endpoints.get_endpoint(self.bridge.store, request.match_info["id"])
        return _json(endpoint_json(sub))

    async def update_endpoint(self, request: web.Request) -> web.Response:
        endpoint_id = request.match_info["id"]
        await endpoints.writable_endpoint(self.bridge.store, endpoint_id)  # 404/409 first
        fields = parse_json_object(await request.read())
        new = await endpoints.update_endpoint(
            self.bridge.store, self.bridge.config, endpoint_id, fields, clock=self.bridge.clock
        )
        self._changed()
        return _json(endpoint_json(new))

    async def delete_endpoint(self, request: web.Request) -> web.Response:
        sub = await endpoints.delete_endpoint(self.bridge.store, request.match_info["id"])
        self._changed()
        log.info("endpoint %s deleted via the API", sub.id)
        return _json({**endpoint_json(sub), "deleted": True})

    async def rotate_secret(self, request: web.Request) -> web.Response:
        endpoint_id = request.match_info["id"]
        await endpoints.writable_endpoint(self.bridge.store, endpoint_id)  # 404/409 first
        body = parse_body(RotateRequest, await request.read())
        rotated = await endpoints.rotate_secret(
            self.bridge.store, self.bridge.config, endpoint_id, body.secret, clock=self.bridge.clock
        )
        self._changed()
        log.info(
            "endpoint %s secret rotated; the old one signs until %s",
            endpoint_id,
            iso(rotated.endpoint.previous_secret_expires_at),
        )
        return _json(endpoint_json(rotated.endpoint, secret=rotated.secret))

    # -- events ---------------------------------------------------------------------------------
    async def list_events(self, request: web.Request) -> web.Response:
        offset, size = _paging(request)
        page = await self.bridge.store.list_events(
            type=request.query.get("type") or None, offset=offset, limit=size
        )
        return _json({"count": page.count, "list": [e.model_dump(mode="json") for e in page.items]})

    async def get_event(self, request: web.Request) -> web.Response:
        ev = await self.bridge.store.get_event(request.match_info["id"])
        if ev is None:
            raise RequestError("no such event", status=404, error_type="not_found")
        attempts = await self.bridge.store.list_attempts(event_id=ev.id, limit=100)
        return _json(
            {**ev.model_dump(mode="json"), "attempts": [attempt_json(a) for a in attempts.items]}
        )

    async def resend(self, request: web.Request) -> web.Response:
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

    async def list_attempts(self, request: web.Request) -> web.Response:
        offset, size = _paging(request)
        page = await self.bridge.store.list_attempts(
            event_id=request.query.get("event_id") or None,
            subscriber_id=request.query.get("webhook_endpoint_id") or None,
            offset=offset,
            limit=size,
        )
        return _json({"count": page.count, "list": [attempt_json(a) for a in page.items]})


def add_admin_routes(app: web.Application, bridge: Bridge) -> None:
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
    r.add_get("/api/events", g(a.list_events))
    r.add_get("/api/events/{id}", g(a.get_event))
    r.add_post("/api/events/{id}/resend", g(a.resend))
    r.add_get("/api/webhook-attempts", g(a.list_attempts))
