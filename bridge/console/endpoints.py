"""The endpoint pages: list, detail with recent attempts, and every endpoint action.

Every change goes through :mod:`bridge.endpoints` (the operations the admin API and the CLI
use), so the console validates nothing itself: a refused change comes back as that module's
error, shown beside the form, and nothing is written. A new or rotated secret is shown once,
in the answer to the POST that made it (never in a URL, never again).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web

from bridge import endpoints as ops
from bridge.catalog import CATALOG
from bridge.console.plumbing import PREFIX, STATE_KEY, action, form_of, page, redirect, render
from bridge.errors import EndpointReadOnlyError, InvalidEndpointError, RequestError
from bridge.store.base import Subscriber

__all__ = ["add_endpoint_routes", "endpoint_fields", "event_patterns"]

log = logging.getLogger(__name__)

_NOTICES = {
    "enabled": "Endpoint enabled.",
    "disabled": "Endpoint disabled: nothing is sent to it until it is enabled again.",
    "updated": "Endpoint saved.",
    "deleted": "Endpoint deleted.",
}


def event_patterns() -> list[str]:
    """What ``enabled_events`` may hold, for the form: ``*``, family wildcards, then types."""
    families = sorted({t.rsplit(".", 1)[0] + ".*" for t in CATALOG if "." in t})
    return ["*", *families, *sorted(CATALOG)]


def endpoint_fields(form: Any, *, creating: bool) -> dict[str, Any]:
    """The fields of an endpoint form in the shape :mod:`bridge.endpoints` takes (its
    validation decides what is acceptable). Raises RequestError for metadata that is not a
    JSON object."""
    fields: dict[str, Any] = {
        "url": form.get("url", "").strip(),
        "enabled_events": [e for e in form.getall("enabled_events", []) if e],
        "description": form.get("description", "").strip() or None,
    }
    raw_meta = form.get("metadata", "").strip()
    if raw_meta:
        try:
            meta = orjson.loads(raw_meta)
        except orjson.JSONDecodeError:
            raise InvalidEndpointError("metadata: not valid JSON") from None
        if not isinstance(meta, dict):
            raise InvalidEndpointError("metadata: must be a JSON object")
        fields["metadata"] = meta
    elif not creating:
        fields["metadata"] = {}
    if creating:
        fields["signature"] = form.get("signature", "standard")
        fields["livemode"] = form.get("livemode") == "true"
    return fields


def _not_found(request: web.Request) -> web.Response:
    return render(
        request,
        "error.html",
        {"title": "Not found", "message": "No such webhook endpoint."},
        status=404,
    )


@page
async def list_endpoints(request: web.Request) -> web.Response:
    store = request.app[STATE_KEY].bridge.store
    endpoints = await ops.list_endpoints(store, limit=1000)
    rows = [(s, await store.last_success_at(s.id)) for s in endpoints.items]
    return render(
        request,
        "endpoints.html",
        {
            "title": "Endpoints",
            "nav": "endpoints",
            "rows": rows,
            "now": request.app[STATE_KEY].now(),
            "notice": _NOTICES.get(request.query.get("notice", "")),
        },
    )


def _form_page(
    request: web.Request,
    *,
    sub: Subscriber | None,
    values: dict[str, Any],
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    return render(
        request,
        "endpoint_form.html",
        {
            "title": f"Edit {sub.id}" if sub else "New endpoint",
            "nav": "endpoints",
            "sub": sub,
            "values": values,
            "patterns": event_patterns(),
            "error": error,
        },
        status=status,
    )


def _values_of(sub: Subscriber) -> dict[str, Any]:
    return {
        "url": sub.url or "",
        "enabled_events": sub.enabled_events,
        "description": sub.description or "",
        "metadata": orjson.dumps(sub.metadata).decode() if sub.metadata else "",
        "signature": sub.signature,
        "livemode": sub.livemode,
    }


def _values_from_form(form: Any) -> dict[str, Any]:
    return {
        "url": form.get("url", ""),
        "enabled_events": form.getall("enabled_events", []),
        "description": form.get("description", ""),
        "metadata": form.get("metadata", ""),
        "signature": form.get("signature", "standard"),
        "livemode": form.get("livemode") == "true",
    }


@page
async def new_endpoint(request: web.Request) -> web.Response:
    return _form_page(
        request,
        sub=None,
        values={
            "url": "",
            "enabled_events": [],
            "description": "",
            "metadata": "",
            "signature": "standard",
            "livemode": False,
        },
    )


@action
async def create_endpoint(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    form = form_of(request)
    try:
        made = await ops.create_endpoint(
            state.bridge.store,
            state.bridge.config,
            endpoint_fields(form, creating=True),
            clock=state.bridge.clock,
        )
    except RequestError as exc:
        return _form_page(
            request, sub=None, values=_values_from_form(form), error=str(exc), status=exc.status
        )
    _changed(request)
    log.info("console: endpoint %s created", made.endpoint.id)
    return _secret_page(request, made.endpoint, made.secret, created=True)


def _secret_page(
    request: web.Request, sub: Subscriber, secret: str, *, created: bool
) -> web.Response:
    return render(
        request,
        "secret.html",
        {
            "title": "Endpoint created" if created else "Secret rotated",
            "nav": "endpoints",
            "sub": sub,
            "secret": secret,
            "created": created,
        },
    )


def _changed(request: web.Request) -> None:
    dispatcher = request.app[STATE_KEY].bridge.dispatcher
    if dispatcher is not None:
        dispatcher.invalidate()


async def _read_only_reason(request: web.Request, sub: Subscriber) -> str | None:
    try:
        await ops.writable_endpoint(request.app[STATE_KEY].bridge.store, sub.id)
    except EndpointReadOnlyError as exc:
        return str(exc)
    return None


@page
async def show_endpoint(request: web.Request) -> web.Response:
    return await _detail(request)


async def _detail(
    request: web.Request,
    *,
    test: ops.SentTestEvent | None = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    state = request.app[STATE_KEY]
    store = state.bridge.store
    try:
        sub = await ops.get_endpoint(store, request.match_info["id"])
    except RequestError:
        return _not_found(request)
    attempts = await store.list_attempts(subscriber_id=sub.id, limit=20)
    return render(
        request,
        "endpoint.html",
        {
            "title": f"Endpoint {sub.id}",
            "nav": "endpoints",
            "sub": sub,
            "metadata_json": orjson.dumps(sub.metadata, option=orjson.OPT_INDENT_2).decode(),
            "read_only": await _read_only_reason(request, sub),
            "last_success": await store.last_success_at(sub.id),
            "attempts": attempts.items,
            "attempt_count": attempts.count,
            "now": state.now(),
            "notice": _NOTICES.get(request.query.get("notice", "")),
            "test": test,
            "error": error,
        },
        status=status,
    )


@page
async def edit_endpoint(request: web.Request) -> web.Response:
    store = request.app[STATE_KEY].bridge.store
    try:
        sub = await ops.writable_endpoint(store, request.match_info["id"])
    except EndpointReadOnlyError:
        return await _detail(request)
    except RequestError:
        return _not_found(request)
    return _form_page(request, sub=sub, values=_values_of(sub))


@action
async def update_endpoint(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    form = form_of(request)
    endpoint_id = request.match_info["id"]
    try:
        sub = await ops.get_endpoint(state.bridge.store, endpoint_id)
    except RequestError:
        return _not_found(request)
    try:
        await ops.update_endpoint(
            state.bridge.store,
            state.bridge.config,
            endpoint_id,
            endpoint_fields(form, creating=False),
            clock=state.bridge.clock,
        )
    except RequestError as exc:
        return _form_page(
            request, sub=sub, values=_values_from_form(form), error=str(exc), status=exc.status
        )
    _changed(request)
    return _back(request, endpoint_id, "updated")


def _back(request: web.Request, endpoint_id: str, notice: str) -> web.Response:
    url = request.app.router["console.endpoint"].url_for(id=endpoint_id)
    return redirect(url.with_query({"notice": notice}))


def _toggle(enabled: bool) -> Any:
    @action
    async def handler(request: web.Request) -> web.Response:
        state = request.app[STATE_KEY]
        endpoint_id = request.match_info["id"]
        try:
            await ops.set_enabled(
                state.bridge.store,
                state.bridge.config,
                endpoint_id,
                enabled,
                clock=state.bridge.clock,
            )
        except RequestError as exc:
            return await _refused(request, exc)
        _changed(request)
        log.info("console: endpoint %s %s", endpoint_id, "enabled" if enabled else "disabled")
        return _back(request, endpoint_id, "enabled" if enabled else "disabled")

    return handler


async def _refused(request: web.Request, exc: RequestError) -> web.Response:
    if exc.status == 404:
        return _not_found(request)
    return await _detail(request, error=str(exc), status=exc.status)


@action
async def rotate_endpoint(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        made = await ops.rotate_secret(
            state.bridge.store,
            state.bridge.config,
            request.match_info["id"],
            clock=state.bridge.clock,
        )
    except RequestError as exc:
        return await _refused(request, exc)
    _changed(request)
    log.info("console: endpoint %s secret rotated", made.endpoint.id)
    return _secret_page(request, made.endpoint, made.secret, created=False)


@action
async def delete_endpoint(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        sub = await ops.delete_endpoint(state.bridge.store, request.match_info["id"])
    except RequestError as exc:
        return await _refused(request, exc)
    _changed(request)
    log.info("console: endpoint %s deleted", sub.id)
    return redirect(
        request.app.router["console.endpoints"].url_for().with_query({"notice": "deleted"})
    )


@action
async def test_endpoint(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        sent = await ops.send_test_event(
            state.bridge.store,
            state.bridge.config,
            request.match_info["id"],
            event_type=form_of(request).get("event_type") or None,
            clock=state.bridge.clock,
        )
    except RequestError as exc:
        return await _refused(request, exc)
    log.info("console: test event sent to %s (delivered: %s)", sent.event.id, sent.delivered)
    return await _detail(request, test=sent)


def add_endpoint_routes(app: web.Application) -> None:
    r = app.router
    base = PREFIX + "/endpoints"
    r.add_get(base, list_endpoints, name="console.endpoints")
    r.add_get(base + "/new", new_endpoint, name="console.endpoint.new")
    r.add_post(base, create_endpoint)
    r.add_get(base + "/{id}", show_endpoint, name="console.endpoint")
    r.add_get(base + "/{id}/edit", edit_endpoint)
    r.add_post(base + "/{id}", update_endpoint)
    r.add_post(base + "/{id}/enable", _toggle(True))
    r.add_post(base + "/{id}/disable", _toggle(False))
    r.add_post(base + "/{id}/rotate", rotate_endpoint)
    r.add_post(base + "/{id}/delete", delete_endpoint)
    r.add_post(base + "/{id}/test", test_endpoint)
