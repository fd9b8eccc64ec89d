"""The asyncpg pool of :class:`bridge.store.postgres.PostgresStore` and its error mapping.

Every asyncpg, OS and timeout error becomes :class:`bridge.errors.StoreError` (the service
answers 503 and the provider retries). The pool drops a connection that the server closed and
opens a fresh one on the next acquire, so the store recovers by itself once the database is
back; the call that met the dead connection fails with ``StoreError``.

Two pools: durable work (ingest, admin changes) commits as usual; bookkeeping (attempt outcomes,
leases, claims; ``durable=False``) runs on connections with ``synchronous_commit = off``: its
commit does not wait for the WAL flush. A crash of the database server can lose the last few
hundred milliseconds of bookkeeping, never an ingest, and a lost outcome only means the delivery
is sent again (at least once, same ``webhook-id``). The SQLite store does the same with
``synchronous=NORMAL`` for such groups.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from bridge.errors import StoreError
from bridge.store.postgres.schema import migrate

__all__ = ["DB_ERRORS", "PgPool"]

DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
_OPEN_ERRORS: tuple[type[BaseException], ...] = (*DB_ERRORS, ValueError)  # ValueError: bad DSN


async def _reset(conn: Any) -> None:
    """Reset a connection handed back to the pool. paybridge keeps no session state (its
    advisory locks are transaction-scoped, the migration lock is released explicitly), so
    asyncpg's default reset (a round trip running RESET ALL, UNLISTEN *, CLOSE ALL and
    pg_advisory_unlock_all on every release) is pure overhead on the hot path."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class PgPool:
    """An asyncpg pool opened by :meth:`open`; :meth:`tx` and :meth:`conn` hand out
    connections and turn database failures into :class:`StoreError`."""

    def __init__(
        self, url: str, *, min_size: int, max_size: int, command_timeout_s: float | None
    ) -> None:
        self._url = url
        self._min_size = min_size
        self._max_size = max_size
        self._command_timeout_s = command_timeout_s
        self._pool: Any = None
        self._lazy: Any = None  # the bookkeeping pool (synchronous_commit = off)

    async def open(self) -> None:
        """Create the pool and apply pending migrations; raises :class:`StoreError`."""
        if self._pool is not None:
            return
        pool = await self._create(None)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            lazy = await self._create({"synchronous_commit": "off"})
        except DB_ERRORS as exc:
            await pool.close()
            raise StoreError(f"cannot migrate PostgreSQL store: {exc}") from exc
        except StoreError:
            await pool.close()
            raise
        self._pool, self._lazy = pool, lazy

    async def _create(self, settings: dict[str, str] | None) -> Any:
        try:
            return await asyncpg.create_pool(
                self._url,
                min_size=self._min_size,
                max_size=self._max_size,
                command_timeout=self._command_timeout_s,
                reset=_reset,
                server_settings=settings,
            )
        except _OPEN_ERRORS as exc:
            raise StoreError(f"cannot open PostgreSQL store: {exc}") from exc

    async def close(self) -> None:
        """Close the pool (waiting for connections in use); idempotent."""
        pools = (self._pool, self._lazy)
        self._pool = self._lazy = None
        for pool in pools:
            if pool is not None:
                with contextlib.suppress(*DB_ERRORS):
                    await pool.close()

    def _require(self, durable: bool) -> Any:
        if self._pool is None:
            raise StoreError("store is not open")
        return self._pool if durable else self._lazy

    @contextlib.asynccontextmanager
    async def conn(self, *, durable: bool = True) -> AsyncIterator[Any]:
        """A connection (autocommit; ``durable=False``: a bookkeeping one, see the module
        docstring); raises :class:`StoreError` on any database failure."""
        pool = self._require(durable)
        try:
            async with pool.acquire() as conn:
                yield conn
        except DB_ERRORS as exc:
            raise StoreError(f"database error: {exc}") from exc

    @contextlib.asynccontextmanager
    async def tx(self, *, durable: bool = True) -> AsyncIterator[Any]:
        """A connection inside one READ COMMITTED transaction, committed when the block
        exits normally and rolled back otherwise (``durable=False``: a bookkeeping one, see
        the module docstring); raises :class:`StoreError` on any database failure. (If the
        connection dies during COMMIT the outcome is unknown: a retried ingest then answers
        ``duplicate`` when the first try did commit.)"""
        pool = self._require(durable)
        try:
            async with pool.acquire() as conn, conn.transaction():
                yield conn
        except DB_ERRORS as exc:
            raise StoreError(f"database error: {exc}") from exc
