"""Stored bytes per provider event, and the size a store settles at under retention.

:func:`bytes_per_event`: ``n`` bench requests through the real service path (verification,
normalization, the store's ingest) into a fresh SQLite file, with a durable bus handler
subscribed to every event, so each request leaves its inbox row, its canonical events, one
delivery and one finished attempt per event: everything an event costs. The figure is the
file's pages per table and index (SQLite's ``dbstat``) divided by ``n``, against the raw body.

:func:`plateau`: simulated days of steady traffic on an injected clock, pruned at the end of
each day by the retention settings; the file's size per day stops growing after the window.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from multidict import CIMultiDict

import bridge  # noqa: F401  (load order: bridge before adapters)
from adapters.base import InboundRequest
from bench.payload import BENCH_SECRET, EventFactory
from bridge.config import Config
from bridge.events import Event
from bridge.service import Bridge

__all__ = ["bytes_per_event", "db_bytes", "pg_table_bytes", "plateau", "storage", "table_bytes"]

_T0 = 1_900_000_000.0


def table_bytes(path: Path) -> dict[str, int]:
    """Bytes of each table and index of the SQLite file at ``path`` (``dbstat``)."""
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
    finally:
        conn.close()
    return {str(name): int(size) for name, size in rows}


def db_bytes(path: Path) -> int:
    """The size of the SQLite database at ``path`` as a reader sees it (WAL frames included,
    whether or not a checkpoint has copied them into the file yet)."""
    conn = sqlite3.connect(path)
    try:
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        (size,) = conn.execute("PRAGMA page_size").fetchone()
    finally:
        conn.close()
    return int(pages) * int(size)


_PG_SIZES = (
    "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = 'public' AND c.relkind = 'r'"
)


async def pg_table_bytes(url: str) -> dict[str, int]:
    """Bytes of each table of the PostgreSQL database at ``url``, with its indexes and TOAST
    (``pg_total_relation_size``), after a VACUUM so the figures are settled."""
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("VACUUM")
        rows = await conn.fetch(_PG_SIZES)
    finally:
        await conn.close()
    return {str(r[0]): int(r[1]) for r in rows}


def _config(store_url: str, retention: dict[str, float] | None = None) -> Config:
    data: dict[str, Any] = {
        "store": {"url": store_url, "sqlite_synchronous": "normal"},
        # the requests are signed now and received on the simulated clock, years apart
        "sources": {"stripe": {"signing_secrets": [BENCH_SECRET], "tolerance_s": 10**10}},
        "logging": {"level": "WARNING"},
    }
    if retention:
        data["retention"] = retention
    return Config.model_validate(data)


class _Clock:
    def __init__(self) -> None:
        self.now = _T0

    def __call__(self) -> float:
        return self.now


async def _feed(b: Bridge, factory: EventFactory, start: int, n: int, clock: _Clock) -> None:
    for i in range(start, start + n):
        _, body, headers = factory.make(i)
        request = InboundRequest(
            "POST", "/webhooks/stripe", {}, CIMultiDict(headers), body, clock.now
        )
        await b.ingest("stripe", request)
    for _ in range(6000):  # the handler's deliveries finish (at most a minute)
        if not (await b.store.counts())["pending"]:
            return
        await asyncio.sleep(0.01)
    raise RuntimeError("deliveries still pending after a minute")


def _bridge(store_url: str, clock: _Clock, retention: dict[str, float] | None = None) -> Bridge:
    b = Bridge(_config(store_url, retention), clock=clock)

    async def handled(event: Event) -> None:
        return None

    b.bus.on("*", handled, name="bench_storage")
    return b


async def _bytes_per_event(store_url: str, n: int, sqlite_path: Path | None) -> dict[str, Any]:
    clock = _Clock()
    factory = EventFactory(tag="storage")
    _, body, _ = factory.make(0)
    b = _bridge(store_url, clock)
    async with b:
        await _feed(b, factory, 0, n, clock)
        counts = await b.store.counts()
    tables = table_bytes(sqlite_path) if sqlite_path else await pg_table_bytes(store_url)
    total = sum(tables.values())
    return {
        "provider_events": n,
        "canonical_events": counts["events"],
        "raw_body_bytes": len(body),
        "stored_bytes_per_event": round(total / n),
        "ratio_to_raw_body": round(total / n / len(body), 2),
        "bytes_per_event_by_table": {k: round(v / n) for k, v in sorted(tables.items()) if v},
    }


def bytes_per_event(
    directory: Path, n: int = 2000, postgres_url: str | None = None
) -> dict[str, Any]:
    """See the module docstring; on PostgreSQL when ``postgres_url`` (an empty database)."""
    if postgres_url is not None:
        return asyncio.run(_bytes_per_event(postgres_url, n, None))
    path = directory / "storage.db"
    return asyncio.run(_bytes_per_event(f"sqlite:///{path}", n, path))


async def _plateau(path: Path, per_day: int, days: int, retention_days: float) -> list[int]:
    clock = _Clock()
    factory = EventFactory(tag="plateau")
    days_kept = {"events_days": retention_days, "attempts_days": retention_days}
    retention = {**days_kept, "inbox_days": max(retention_days, 3.0)}
    b = _bridge(f"sqlite:///{path}", clock, retention)
    sizes: list[int] = []
    async with b:
        for day in range(days):
            for hour in range(24):  # the day's traffic, spread over its hours
                clock.now = _T0 + day * 86_400 + hour * 3600
                await _feed(b, factory, (day * 24 + hour) * per_day // 24, per_day // 24, clock)
            clock.now = _T0 + (day + 1) * 86_400
            await b.pruner.run()
            sizes.append(db_bytes(path))
    return sizes


def plateau(directory: Path, *, per_day: int, days: int, retention_days: float) -> list[int]:
    """The SQLite database's size at the end of each simulated day (module docstring)."""
    return asyncio.run(_plateau(directory / "plateau.db", per_day, days, retention_days))


PLATEAU_PER_DAY = 480  # provider events a simulated day (the stated rate: 20 an hour)
PLATEAU_DAYS = 8
PLATEAU_RETENTION_DAYS = 3.0


def storage(ctx: Any) -> dict[str, Any]:
    """The ``storage`` workload: bytes per event on SQLite (and PostgreSQL when the bench has
    a server), and the size a SQLite store settles at under retention."""
    from bench.workloads import drop_postgres_database, postgres_database

    n = 5000 if ctx.full else 2000
    out: dict[str, Any] = {"sqlite": bytes_per_event(ctx.dir("storage"), n)}
    if ctx.postgres_url:
        url, name = postgres_database(ctx.postgres_url)
        try:
            out["postgres"] = bytes_per_event(ctx.dir("storage_pg"), n, postgres_url=url)
        finally:
            drop_postgres_database(ctx.postgres_url, name)
    sizes = plateau(
        ctx.dir("plateau"),
        per_day=PLATEAU_PER_DAY,
        days=PLATEAU_DAYS,
        retention_days=PLATEAU_RETENTION_DAYS,
    )
    per_day_mb = [round(s / 2**20, 2) for s in sizes]
    window = int(PLATEAU_RETENTION_DAYS) + 1  # the kept days and the day being written
    out["plateau"] = {
        "provider_events_per_day": PLATEAU_PER_DAY,
        "retention_days": PLATEAU_RETENTION_DAYS,
        "db_mb_at_end_of_day": per_day_mb,
        "plateau_mb": per_day_mb[-1],
        "growth_after_window_mb": round(per_day_mb[-1] - per_day_mb[window - 1], 2),
        "bytes_per_kept_event": round(sizes[-1] / (PLATEAU_PER_DAY * window)),
    }
    return out
