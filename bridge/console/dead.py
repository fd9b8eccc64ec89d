"""The dead deliveries page: the list (keyset pages, one endpoint or all), resend one, and
recover — resend everything that failed for an endpoint since a time — after a confirmation
page that shows how many deliveries it will queue (a dry run of the same recovery, through
:func:`bridge.endpoints.recover_endpoint`, the operation the admin API and the CLI use)."""

from __future__ import annotations

import logging

from aiohttp import web

from bridge import endpoints as ops
from bridge.console.filters import parse_cursor
from bridge.console.plumbing import PREFIX, STATE_KEY, action, form_of, page, render
from bridge.errors import RequestError
from bridge.recovery import RecoveryResult

__all__ = ["add_dead_routes"]

log = logging.getLogger(__name__)

PAGE_SIZE = 50


@page
async def list_dead(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    store = state.bridge.store
    endpoint_id = request.query.get("endpoint", "").strip() or None
    before = parse_cursor(request.query.get("before"))
    result = await store.list_deliveries(
        status="dead", subscriber_id=endpoint_id, before_id=before, limit=PAGE_SIZE
    )
    endpoints = await ops.list_endpoints(store, limit=1000)
    next_url = None
    if result.next_cursor is not None:
        query = {"before": str(result.next_cursor)}
        if endpoint_id:
            query["endpoint"] = endpoint_id
        next_url = str(request.rel_url.with_query(query))
    return render(
        request,
        "dead.html",
        {
            "title": "Dead deliveries",
            "nav": "dead",
            "deliveries": result.items,
            "endpoints": endpoints.items,
            "endpoint_id": endpoint_id,
            "next_url": next_url,
            "first_page": before is None,
            "error": None,
            "since": "24h",
        },
    )


def _refused(request: web.Request, exc: RequestError) -> web.Response:
    message = "No such webhook endpoint." if exc.status == 404 else str(exc)
    return render(
        request, "error.html", {"title": "Recover refused", "message": message}, status=exc.status
    )


async def _recover(request: web.Request, *, dry_run: bool) -> RecoveryResult | web.Response:
    """The recovery a form asks for, through the operation the API and the CLI share; the
    page refusing it when it is refused (nothing changed)."""
    state = request.app[STATE_KEY]
    form = form_of(request)
    try:
        return await ops.recover_endpoint(
            state.bridge.store,
            form.get("endpoint_id", "").strip(),
            {"since": form.get("since", "").strip(), "dry_run": dry_run},
            now=state.now(),
        )
    except RequestError as exc:
        return _refused(request, exc)


@action
async def preview_recover(request: web.Request) -> web.Response:
    result = await _recover(request, dry_run=True)
    if isinstance(result, web.Response):
        return result
    return render(
        request,
        "recover.html",
        {"title": "Recover", "nav": "dead", "result": result, "done": False},
    )


@action
async def recover(request: web.Request) -> web.Response:
    result = await _recover(request, dry_run=False)
    if isinstance(result, web.Response):
        return result
    dispatcher = request.app[STATE_KEY].bridge.dispatcher
    if dispatcher is not None:
        dispatcher.invalidate()
    log.info(
        "console: endpoint %s recovered since %.0f: %d dead resent, %d failing retried now",
        result.endpoint_id,
        result.since,
        result.dead,
        result.failing,
    )
    return render(
        request,
        "recover.html",
        {"title": "Recovered", "nav": "dead", "result": result, "done": True},
    )


def add_dead_routes(app: web.Application) -> None:
    r = app.router
    r.add_get(PREFIX + "/dead", list_dead, name="console.dead")
    r.add_post(PREFIX + "/dead/recover/preview", preview_recover)
    r.add_post(PREFIX + "/dead/recover", recover)
