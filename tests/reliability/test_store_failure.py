"""Issue #6, store failure: when the store cannot commit, ingress answers 503 and nothing it did
not store is acked; when the store comes back the same process recovers by itself (no
restart), takes the provider's retries and delivers everything.

Three real failures: a full SQLite database (``PRAGMA max_page_count`` on the service's own
connection: SQLite then answers SQLITE_FULL), a SQLite file whose write lock another process
holds past ``busy_timeout``, and a PostgreSQL database that drops every connection and refuses
new ones (``pg_terminate_backend`` + ``ALLOW_CONNECTIONS false``)."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import orjson
import pytest
import yaml
from pytest_aiohttp import AiohttpClient

from bridge.config import parse_config
from bridge.service import Bridge
from bridge.store.sqlite import SqliteStore
from tests.conftest import stripe_event, stripe_headers
from tests.receivers import subscription
from tests.reliability.conftest import ServiceFactory
from tests.reliability.harness import (
    Service,
    VerifyingReceiver,
    config_data,
    facts_of,
    post_one,
    subscription_pair,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow


def _bodies(prefix: str, n: int) -> list[bytes]:
    return [subscription_pair(f"sub_{prefix}{i}")[0] for i in range(n)]


def _big_bodies(prefix: str, n: int) -> list[bytes]:
    """Events too large to fit in a full database (40 KB of metadata each, random so that the
    inbox's compression cannot shrink it)."""
    out = []
    for i in range(n):
        sub = {
            **subscription(f"sub_{prefix}{i}"),
            "metadata": {"pad": secrets.token_urlsafe(30_000)},
        }
        out.append(orjson.dumps(stripe_event("customer.subscription.created", sub)))
    return out


def _ids(bodies: Sequence[bytes]) -> set[str]:
    return {i for b in bodies for i in facts_of(b).values()}


def _provider_ids(bodies: Sequence[bytes]) -> set[str]:
    return {str(orjson.loads(b)["id"]) for b in bodies}


def _sqlite_inbox(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {str(r[0]) for r in conn.execute("SELECT provider_event_id FROM inbox")}
    finally:
        conn.close()


async def _post_all(url: str, bodies: Sequence[bytes]) -> list[int | None]:
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        return list(await asyncio.gather(*(post_one(session, url, b) for b in bodies)))


# -- SQLite: database full ------------------------------------------------------------------------
def _cap_pages(conn: sqlite3.Connection, limit: int | None) -> int:
    """Runs on the store's writer thread: cap the file at its current size (None: lift it)."""
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    conn.execute(f"PRAGMA max_page_count = {pages if limit is None else limit}")
    return pages


async def test_store_failure_sqlite_full_answers_503_and_recovers_in_process(
    tmp_path: Path,
    receiver: VerifyingReceiver,
    aiohttp_client: AiohttpClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = tmp_path / "paybridge.db"
    data = config_data(f"sqlite:///{db}", receiver.url, receiver.secret)
    bridge = Bridge(parse_config(yaml.safe_dump(data), env={}))
    client = await aiohttp_client(bridge.web_app())

    async def post(body: bytes) -> tuple[int, dict[str, Any]]:
        resp = await client.post("/webhooks/stripe", data=body, headers=stripe_headers(body))
        return resp.status, await resp.json()

    before = _bodies("full_before", 3)
    assert [(await post(b))[0] for b in before] == [200] * 3
    assert isinstance(bridge.store, SqliteStore)
    await bridge.store._worker.call(_cap_pages, None)  # the database is full from now on
    during = _big_bodies("full_during", 4)
    for body in during:
        status, answer = await post(body)
        assert status == 503, answer
        assert answer["error"]["message"] == "store unavailable; retry later"
    assert not _provider_ids(during) & _sqlite_inbox(db)  # nothing unacked was kept
    assert "database or disk is full" in caplog.text  # the real SQLITE_FULL, not another error

    await bridge.store._worker.call(_cap_pages, 1_073_741_823)  # space again
    assert [(await post(b))[0] for b in during] == [200] * 4  # the provider's retries
    assert _provider_ids(before + during) <= _sqlite_inbox(db)
    ids = _ids(before + during)
    await wait_for(lambda: ids <= receiver.delivered, "every acked fact delivered")


# -- SQLite: write lock held by another process ---------------------------------------------------
async def test_store_failure_sqlite_locked_by_another_writer_answers_503_then_recovers(
    tmp_path: Path, receiver: VerifyingReceiver, services: ServiceFactory
) -> None:
    db = tmp_path / "paybridge.db"
    svc = services(
        write_config(
            tmp_path / "config.yaml", config_data(f"sqlite:///{db}", receiver.url, receiver.secret)
        )
    )
    await svc.ready()
    locked = _bodies("locked", 4)
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # the write lock, held past busy_timeout (5 s)
        assert await _post_all(svc.url, locked) == [503] * 4
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not _provider_ids(locked) & _sqlite_inbox(db)
    assert await _post_all(svc.url, locked) == [200] * 4
    await wait_for(lambda: _ids(locked) <= receiver.delivered, "every fact delivered")
    assert svc.alive()


# -- PostgreSQL: the database goes away -----------------------------------------------------------
@asynccontextmanager
async def _database_gone(server_url: str, database_url: str) -> AsyncIterator[None]:
    """Refuse new connections to the database and kill the open ones; undo on exit."""
    name = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(server_url)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
        )
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


async def _pg_inbox(database_url: str) -> set[str]:
    conn = await asyncpg.connect(database_url)
    try:
        return {r[0] for r in await conn.fetch("SELECT provider_event_id FROM inbox")}
    finally:
        await conn.close()


async def _health(svc: Service) -> int:
    async with aiohttp.ClientSession() as session, session.get(svc.url + "/healthz") as resp:
        return resp.status


@pytest.mark.postgres
async def test_store_failure_postgres_gone_answers_503_and_recovers_without_restart(
    tmp_path: Path,
    receiver: VerifyingReceiver,
    services: ServiceFactory,
    postgres_server_url: str,
    pg_url: str,
) -> None:
    svc = services(
        write_config(tmp_path / "config.yaml", config_data(pg_url, receiver.url, receiver.secret))
    )
    await svc.ready()
    before, during = _bodies("pg_before", 3), _bodies("pg_during", 4)
    assert await _post_all(svc.url, before) == [200] * 3
    async with _database_gone(postgres_server_url, pg_url):
        assert await _post_all(svc.url, during) == [503] * 4
        assert await _health(svc) == 503
    assert not _provider_ids(during) & await _pg_inbox(pg_url)

    async def retried() -> bool:  # the provider retries until it gets a 2xx
        statuses = await _post_all(svc.url, during)
        return all(s == 200 for s in statuses)

    for _ in range(100):
        if await retried():
            break
        await asyncio.sleep(0.1)
    assert _provider_ids(before + during) <= await _pg_inbox(pg_url)
    assert await _health(svc) == 200
    ids = _ids(before + during)
    await wait_for(lambda: ids <= receiver.delivered, "every acked fact delivered")
    assert svc.alive()
