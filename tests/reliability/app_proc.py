"""A paybridge process with one durable bus handler, for crash and multi-instance tests.

``python -m tests.reliability.app_proc CONFIG PORT RECORD_DB LABEL [--events T ...] [--delay S]``

It serves like ``paybridge serve`` (same logging, ``server.shutdown_timeout_s``, SIGTERM is a
graceful stop) and registers the handler ``grant``, which appends ``(event_id, LABEL)`` to the
table ``handled`` of the SQLite file RECORD_DB (shared by every process of a test), after
sleeping ``--delay`` seconds. The test reads RECORD_DB to see which events each handler name
ran, and where.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sqlite3
import sys
import time

from bridge import Bridge, Event, load_config
from bridge.server import run_app

__all__ = ["main", "record_handled"]


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS handled (event_id TEXT, label TEXT, at REAL)")
    return conn


def record_handled(path: str, event_id: str, label: str) -> None:
    """Append one handled event to RECORD_DB (committed before the handler returns)."""
    conn = _connect(path)
    try:
        conn.execute("INSERT INTO handled VALUES (?, ?, ?)", (event_id, label, time.time()))
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, register ``grant`` and serve until SIGTERM/SIGINT."""
    p = argparse.ArgumentParser()
    p.add_argument("config")
    p.add_argument("port", type=int)
    p.add_argument("record")
    p.add_argument("label")
    p.add_argument("--events", nargs="+", default=["customer.subscription.started"])
    p.add_argument("--delay", type=float, default=0.0)
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    _connect(args.record).close()
    cfg = load_config(args.config)
    bridge = Bridge(cfg)

    async def grant(event: Event) -> None:
        if args.delay:
            await asyncio.sleep(args.delay)
        await asyncio.to_thread(record_handled, args.record, event.id, args.label)

    for event_type in args.events:
        bridge.bus.on(event_type, grant, name="grant")
    # As ``paybridge serve`` runs it: aiohttp's server with the configured limits.
    run_app(bridge.web_app(), cfg.server, host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
