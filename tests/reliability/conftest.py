"""Fixtures of the reliability tests: a verifying receiver, service processes that are always
stopped at teardown, a fresh PostgreSQL database per test (on the server ``tests/store``
uses, skipping without one outside CI)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.reliability.harness import Service, VerifyingReceiver, endpoint_secret, free_port
from tests.store.conftest import postgres_server_url, with_database

__all__ = ["ServiceFactory", "postgres_server_url"]

ServiceFactory = Callable[..., Service]


@pytest.fixture
async def receiver() -> AsyncIterator[VerifyingReceiver]:
    """A started receiver answering 200 (tests may swap ``respond``)."""
    recv = await VerifyingReceiver(endpoint_secret()).start()
    try:
        yield recv
    finally:
        await recv.close()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ServiceFactory]:
    """``services(config_path, app=None, port=None, name="svc")`` → a started :class:`Service`;
    every one still running is SIGKILLed at teardown."""
    started: list[Service] = []

    def make(
        config: Path, app: list[str] | None = None, port: int | None = None, name: str = "svc"
    ) -> Service:
        svc = Service(config, port or free_port(), tmp_path / f"{name}.log", app).start()
        started.append(svc)
        return svc

    yield make
    for svc in started:
        svc.kill()


@pytest.fixture
async def pg_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A brand-new empty PostgreSQL database for this test, dropped afterwards."""
    name = f"paybridge_rel_{secrets.token_hex(6)}"
    conn = await asyncpg.connect(postgres_server_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield with_database(postgres_server_url, name)
    finally:
        conn = await asyncpg.connect(postgres_server_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
