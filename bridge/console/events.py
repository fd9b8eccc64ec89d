"""The events pages: a filtered keyset list, one event in full, and resend."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from aiohttp import web

from bridge.catalog import CATALOG
from bridge.console.filters import parse_cursor, parse_event_filters
from bridge.console.plumbing import PREFIX, STATE_KEY, action, form_of, page, redirect, render
from bridge.store.base import AttemptRecord

__all__ = ["add_event_routes", "group_attempts", "pretty_json"]

log = logging.getLogger(__name__)

PAGE_SIZE = 50


def pretty_json(raw: bytes | str) -> str:
    """Indented JSON of ``raw`` for reading; raw text when it is not JSON."""
    try:
        return orjson.dumps(orjson.loads(raw), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def group_attempts(attempts: list[AttemptRecord]) -> list[dict[str, Any]]:
    """Attempts grouped by delivery (newest delivery first, attempts in order)."""
    by_delivery: dict[int, dict[str, Any]] = {}
    for a in sorted(attempts, key=lambda a: (a.delivery_id, a.attempt)):
        d = by_delivery.setdefault(
            a.delivery_id,
            {
                "id": a.delivery_id,
                "endpoint": a.subscriber_id,
                "status": a.delivery_status,
                "attempts": [],
            },
        )
        d["attempts"].append(a)
    return sorted(by_delivery.values(), key=lambda d: -int(d["id"]))


@page
async def list_events(request: web.Request) -> web.Response:
    store = request.app[STATE_KEY].bridge.store
    filters = parse_event_filters(request.query)
    before = parse_cursor(request.query.get("before"))
    result = await store.browse_events(filters.query, before=before, limit=PAGE_SIZE)
    next_url = None
    if result.next_before is not None:
        params = {k: v for k, v in filters.values.items() if v}
        next_url = request.rel_url.with_query({**params, "before": str(result.next_before)})
    return render(
        request,
        "events.html",
        {
            "title": "Events",
            "nav": "events",
            "events": result.items,
            "filters": filters.values,
            "errors": filters.errors,
            "types": sorted(CATALOG),
            "next_url": str(next_url) if next_url is not None else None,
            "first_page": before is None,
        },
    )


@page
async def show_event(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    store = state.bridge.store
    event = await store.get_event(request.match_info["id"])
    if event is None:
        return render(
            request, "error.html", {"title": "Not found", "message": "No such event."}, status=404
        )
    inbox = await store.get_inbox(event.source, event.source_event_id)
    attempts = await store.list_attempts(event_id=event.id, limit=100)
    endpoints = await store.list_subscribers(kind="endpoint", limit=1000)
    resent = request.query.get("resent")
    return render(
        request,
        "event.html",
        {
            "title": f"Event {event.id}",
            "nav": "events",
            "event": event,
            "event_json": pretty_json(event.to_json()),
            "provider_json": pretty_json(inbox.payload) if inbox is not None else None,
            "deliveries": group_attempts(attempts.items),
            "endpoints": endpoints.items,
            "resent": resent if resent and resent.isascii() and resent.isdigit() else None,
        },
    )


@action
async def resend_event(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    event_id = request.match_info["id"]
    endpoint_id = form_of(request).get("endpoint_id") or None
    if endpoint_id is not None:
        sub = await state.bridge.store.get_subscriber(endpoint_id)
        if sub is None or sub.kind != "endpoint":
            return render(
                request,
                "error.html",
                {"title": "Not found", "message": "No such webhook endpoint."},
                status=404,
            )
    try:
        ids = await state.bridge.store.resend(event_id, now=state.now(), subscriber_id=endpoint_id)
    except LookupError:
        return render(
            request, "error.html", {"title": "Not found", "message": "No such event."}, status=404
        )
    if state.bridge.dispatcher is not None:
        state.bridge.dispatcher.invalidate()
    log.info("console: event %s resent, %d deliveries queued", event_id, len(ids))
    url = (
        request.app.router["console.event"]
        .url_for(id=event_id)
        .with_query({"resent": str(len(ids))})
    )
    return redirect(url)


def add_event_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(PREFIX + "/events", list_events, name="console.events")
    r.add_get(PREFIX + "/events/{id}", show_event, name="console.event")
    r.add_post(PREFIX + "/events/{id}/resend", resend_event, name="console.event.resend")
