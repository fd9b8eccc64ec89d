"""The console's pages against the prefilled store (workload 4's SQLite file): how long
``GET /console/events`` takes, first page, filtered and deep in the keyset, one request at a
time over keep-alive from a signed-in session. Nothing here asserts on speed."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.config import BENCH_ADMIN_KEY
from bench.harness import Ctx, paybridge
from bench.stats import percentile

__all__ = ["console_pages"]

_WARMUP = 20


def _probes(db: Path) -> dict[str, str]:
    """The pages timed: paths built from rows really in the store."""
    conn = sqlite3.connect(db)
    try:
        (top,) = conn.execute("SELECT MAX(seq) FROM events").fetchone()
        (customer,) = conn.execute(
            "SELECT customer FROM events WHERE seq = ?", ((top or 0) // 2,)
        ).fetchone() or (None,)
        (etype,) = conn.execute("SELECT type FROM events WHERE seq = ?", (top,)).fetchone()
    finally:
        conn.close()
    pages = {
        "events_first_page": "/console/events",
        "events_deep_page": f"/console/events?before={(top or 0) // 2}",
        "events_by_type": f"/console/events?type={etype}",
        "events_by_time": "/console/events?from=2000-01-01T00:00",
    }
    if customer:
        pages["events_by_customer"] = f"/console/events?customer={customer}"
    return pages


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


async def _signin(session: aiohttp.ClientSession, base: str) -> None:
    async with session.get(base + "/console/signin") as resp:
        token = re.search(r'name="signin_csrf" value="([^"]+)"', await resp.text())
    assert token, "no sign-in form"
    async with session.post(
        base + "/console/signin",
        data={"key": BENCH_ADMIN_KEY, "signin_csrf": token.group(1)},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 303, f"sign-in refused: {resp.status}"


async def _time_pages(base: str, pages: dict[str, str], n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        await _signin(session, base)
        for name, path in pages.items():
            times: list[float] = []
            for i in range(_WARMUP + n):
                start = time.perf_counter()
                async with session.get(base + path) as resp:
                    body = await resp.read()
                    assert resp.status == 200, f"{path}: {resp.status}"
                if i >= _WARMUP:
                    times.append((time.perf_counter() - start) * 1000)
            times.sort()
            out[name] = {
                "path": path,
                "requests": n,
                "bytes": len(body),
                "p50_ms": _ms(percentile(times, 50)),
                "p99_ms": _ms(percentile(times, 99)),
                "max_ms": round(times[-1], 2),
            }
    return out


def console_pages(ctx: Ctx, db: Path, n: int = 200) -> dict[str, Any]:
    """p50/p99 of the events page (and its filters) served by ``paybridge serve`` from the
    prefilled SQLite file ``db``."""
    pages = _probes(db)
    with paybridge(ctx, "console", f"sqlite:///{db}") as server:
        timings = asyncio.run(_time_pages(server.base, pages, n))
    return {"stored_events": ctx.scale_n, "target_ms": 200, **timings}
