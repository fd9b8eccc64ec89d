"""A paybridge app process with one timestamping bus handler
(``python -m bench.busapp CONFIG PORT``), like ``tests/procs/bus_app.py``.

The handler ``bench_clock`` subscribes to every canonical event and records, per provider
event, the ``time.monotonic()`` at which it first started; ``GET /bench/bus-times`` returns
``{source_event_id: t}`` so the load generator can compare it with its ack times.
"""

from __future__ import annotations

import sys
import time

import orjson
from aiohttp import web

from bridge import Bridge, Event, load_config
from bridge.app import freeze_gc_after_startup
from bridge.server import run_app

__all__ = ["build_app"]


def build_app(config_path: str) -> web.Application:
    """The Bridge's web app plus the handler and the ``/bench/bus-times`` route."""
    bridge = Bridge(load_config(config_path))
    started: dict[str, float] = {}

    async def bench_clock(event: Event) -> None:
        started.setdefault(event.source_event_id, time.monotonic())

    bridge.bus.subscribe(bench_clock, name="bench_clock")

    async def times(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(started), content_type="application/json")

    app = bridge.web_app()
    app.router.add_get("/bench/bus-times", times)
    freeze_gc_after_startup(app)  # as ``paybridge serve`` does
    return app


def main(argv: list[str]) -> int:
    config_path, port = argv[1], int(argv[2])
    server = load_config(config_path).server
    run_app(build_app(config_path), server, host="127.0.0.1", port=port)  # as ``paybridge serve``
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
