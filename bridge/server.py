"""The listening side of ``paybridge serve``: the Bridge's aiohttp application on aiohttp's own
server (``web.AppRunner`` + ``web.TCPSite``), with every HTTP limit set from ``server:``.

aiohttp parses each request (llhttp), enforces the request-line, header-field and header-count
limits (400 before any handler runs), pauses reading a connection that pipelines too far ahead
of its answers, closes connections idle for ``server.keepalive_timeout_s`` and, on shutdown,
gives requests in flight ``server.shutdown_timeout_s`` to be answered. The body limit
``server.max_body_bytes`` is the application's ``client_max_size`` and is also checked by the
provider routes while they read (413).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from bridge.config import ServerConfig

__all__ = ["run_app", "runner_options", "serving"]


def runner_options(server: ServerConfig) -> dict[str, Any]:
    """The ``web.AppRunner`` (and ``web.run_app``) keyword arguments for ``server``: the
    parser limits and keep-alive handed to aiohttp's request handler, no access log (one line
    per provider POST would cost more than storing it; state changes are logged instead)."""
    return {
        "access_log": None,
        "shutdown_timeout": server.shutdown_timeout_s,
        "keepalive_timeout": server.keepalive_timeout_s,
        "max_line_size": server.max_request_line_bytes,
        "max_field_size": server.max_header_field_bytes,
        "max_headers": server.max_headers,
    }


@contextlib.asynccontextmanager
async def serving(
    app: web.Application, server: ServerConfig, host: str, port: int
) -> AsyncIterator[int]:
    """Serve ``app`` on ``host:port`` (``port=0``: any free port) while the block runs; yields
    the bound port. The same runner and limits as :func:`run_app`, without signal handling:
    for tests and for embedding in a running loop."""
    runner = web.AppRunner(app, **runner_options(server))
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        yield int(runner.addresses[0][1])  # (host, port) of the one TCP socket
    finally:
        await runner.cleanup()


def run_app(
    app: web.Application,
    server: ServerConfig,
    *,
    host: str,
    port: int,
    handle_signals: bool = True,
) -> None:
    """Serve ``app`` (a :meth:`bridge.service.Bridge.web_app`, possibly with routes added) on
    ``host:port`` until SIGINT/SIGTERM with :func:`aiohttp.web.run_app` and the limits of
    ``server``. Blocks; the loop is closed afterwards."""
    web.run_app(
        app,
        host=host,
        port=port,
        print=None,
        handle_signals=handle_signals,
        **runner_options(server),
    )
