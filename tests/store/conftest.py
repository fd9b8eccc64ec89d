"""The ``store`` fixture: every contract test runs against SQLite and PostgreSQL.

PostgreSQL comes from ``PAYBRIDGE_TEST_POSTGRES_URL``, else the default local server if it
answers (:mod:`tests.pytest_with_postgres`), a server where we may create databases. The
session creates its own ``paybridge_test_<random>`` database and drops it at the end; each test
starts from empty tables (TRUNCATE). Without a server the PostgreSQL cases skip, unless ``CI``
is set: then they fail, so CI cannot silently test less.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from bridge.store.base import Store
from bridge.store.postgres import PostgresStore
from bridge.store.sqlite import SqliteStore
from tests.pytest_with_postgres import choose_postgres
from tests.store.store_factories import FreshDatabase, OpenStore

ENV_URL = "PAYBRIDGE_TEST_POSTGRES_URL"
_TABLES = (
    "inbox, events, subscribers, deliveries, attempts, pi_links, pi_standalone, deferred, jobs,"
    " invoice_payments"
)


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name``."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def run_admin(url: str, sql: str) -> None:
    """Run one statement (CREATE/DROP DATABASE) on the server, outside any test loop."""
    asyncio.run(_admin(url, sql))


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The server the PostgreSQL tests use; skips without one (fails under ``CI``)."""
    choice = choose_postgres(os.environ)
    if choice.url is None:
        if choice.required:
            pytest.fail(f"CI is set: PostgreSQL tests must run in CI, but {choice.reason}")
        pytest.skip(f"no PostgreSQL server: {choice.reason}")
    return choice.url


@pytest.fixture(scope="session")
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A database of its own for this test session, dropped at the end."""
    name = f"paybridge_test_{secrets.token_hex(6)}"
    run_admin(postgres_server_url, f'CREATE DATABASE "{name}"')
    try:
        yield with_database(postgres_server_url, name)
    finally:
        run_admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def fresh_database(postgres_server_url: str) -> AsyncIterator[FreshDatabase]:
    """Factory of brand-new empty databases (dropped after the test), for migration tests."""
    names: list[str] = []

    async def make() -> str:
        name = f"paybridge_test_{secrets.token_hex(6)}"
        await _admin(postgres_server_url, f'CREATE DATABASE "{name}"')
        names.append(name)
        return with_database(postgres_server_url, name)

    yield make
    for name in names:
        await _admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _truncate(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"TRUNCATE {_TABLES} RESTART IDENTITY")
    finally:
        await conn.close()


@pytest.fixture
async def pg_store(postgres_url: str) -> AsyncIterator[PostgresStore]:
    """An open PostgresStore on the session database, every table empty."""
    store = PostgresStore(postgres_url)
    await store.open()  # migrates the first time
    await _truncate(postgres_url)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def open_pg_store(postgres_url: str) -> AsyncIterator[OpenStore]:
    """Open more PostgresStore instances ("other instances"), by default on the session
    database without a subscriber cache; all closed after the test."""
    opened: list[PostgresStore] = []

    async def make(url: str | None = None, *, max_size: int = 10) -> PostgresStore:
        store = PostgresStore(url or postgres_url, max_size=max_size, subscriber_cache_s=0)
        opened.append(store)
        await store.open()
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """An open SqliteStore on a temporary file."""
    store = SqliteStore(str(tmp_path / "paybridge.db"))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> Store:
    """An open, empty store of each kind."""
    name = "sqlite_store" if request.param == "sqlite" else "pg_store"
    value: Store = request.getfixturevalue(name)
    return value
