"""The operator console: server-rendered pages under ``/console`` to see and fix deliveries.

Mounted by :func:`add_console_routes` only when an admin key is configured (otherwise every
``/console`` path is a 404, like the admin API). Modules: :mod:`~bridge.console.plumbing`
(guards, CSRF, rendering), :mod:`~bridge.console.sessions`, :mod:`~bridge.console.auth`
(sign-in/out) and one module per page family. See docs/console.md.
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

from aiohttp import web

from bridge.console.plumbing import (
    PREFIX,
    STATE_KEY,
    ConsoleState,
    redirect,
    secure_headers,
    setup_templates,
)
from bridge.console.sessions import SessionStore

if TYPE_CHECKING:
    from bridge.served import ServedBridge

__all__ = ["add_console_routes"]

_CSS = resources.files("bridge.console").joinpath("static/console.css").read_bytes()


async def _stylesheet(_request: web.Request) -> web.Response:
    response = web.Response(body=_CSS, content_type="text/css", charset="utf-8")
    secure_headers(response)
    response.headers["Cache-Control"] = "max-age=3600"
    return response


async def _root(_request: web.Request) -> web.Response:
    return redirect(PREFIX + "/")


def add_console_routes(app: web.Application, bridge: ServedBridge) -> None:
    """Mount the console on ``app`` when ``admin.api_keys`` holds a key."""
    keys = [k.get_secret_value().encode() for k in bridge.config.admin.api_keys]
    if not keys:
        return
    from bridge.console.auth import add_auth_routes
    from bridge.console.dead import add_dead_routes
    from bridge.console.endpoints import add_endpoint_routes
    from bridge.console.events import add_event_routes
    from bridge.console.overview import add_overview_routes

    app[STATE_KEY] = ConsoleState(bridge=bridge, keys=keys, sessions=SessionStore())
    setup_templates(app)
    app.router.add_get(PREFIX, _root)
    app.router.add_get(PREFIX + "/static/console.css", _stylesheet, name="console.css")
    add_auth_routes(app)
    add_overview_routes(app)
    add_event_routes(app)
    add_endpoint_routes(app)
    add_dead_routes(app)
