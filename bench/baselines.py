"""Baseline servers the service is compared with (``python -m bench.baselines KIND PORT [DB]``).

* ``a``: a bare aiohttp handler that verifies the Stripe signature (the same verifier paybridge
  uses) and answers 200; nothing stored.
* ``b``: the same plus one row inserted into SQLite (aiosqlite, WAL, synchronous=NORMAL, like
  paybridge) and committed per request before answering.
"""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiosqlite
from aiohttp import web

from bench.payload import BENCH_SECRET
from bridge.errors import SignatureError
from bridge.signing import verify_timestamped_hmac

__all__ = ["make_app"]

_Handler = Callable[[web.Request], Awaitable[web.Response]]
_DB_KEY: web.AppKey[aiosqlite.Connection] = web.AppKey("bench.db")


async def _verified(request: web.Request) -> tuple[bytes, bool]:
    body = await request.read()
    try:
        verify_timestamped_hmac(
            body,
            request.headers.get("Stripe-Signature"),
            [BENCH_SECRET],
            tolerance_s=300,
            now=time.time(),
        )
    except SignatureError:
        return body, False
    return body, True


async def _handle_a(request: web.Request) -> web.Response:
    _, ok = await _verified(request)
    if not ok:
        return web.json_response({"error": "bad signature"}, status=400)
    return web.json_response({"received": True})


async def _handle_b(request: web.Request) -> web.Response:
    body, ok = await _verified(request)
    if not ok:
        return web.json_response({"error": "bad signature"}, status=400)
    db = request.app[_DB_KEY]
    await db.execute("INSERT INTO inbox (received_at, payload) VALUES (?, ?)", (time.time(), body))
    await db.commit()
    return web.json_response({"received": True})


def make_app(kind: str, db_path: str | None = None) -> web.Application:
    """The baseline application ``kind`` (``a`` or ``b``; ``b`` needs ``db_path``).

    Raises:
        ValueError: unknown ``kind``, or ``b`` without ``db_path``.
    """
    app = web.Application()
    if kind == "a":
        app.router.add_post("/webhooks/stripe", _handle_a)
        return app
    if kind != "b" or not db_path:
        raise ValueError(f"unknown baseline {kind!r} (or no database path for 'b')")

    async def database(app: web.Application) -> AsyncIterator[None]:
        db = await aiosqlite.connect(db_path)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute(
            "CREATE TABLE IF NOT EXISTS inbox (id INTEGER PRIMARY KEY, received_at REAL,"
            " payload BLOB NOT NULL)"
        )
        await db.commit()
        app[_DB_KEY] = db
        yield
        await db.close()

    app.cleanup_ctx.append(database)
    app.router.add_post("/webhooks/stripe", _handle_b)
    return app


def main(argv: list[str]) -> int:
    kind, port = argv[1], int(argv[2])
    db_path = argv[3] if len(argv) > 3 else None
    web.run_app(make_app(kind, db_path), host="127.0.0.1", port=port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
