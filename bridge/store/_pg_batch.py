"""Group commit for PostgreSQL writes that need no transaction of their own.

:class:`Gathered` is SQLite's writer-thread idea on asyncpg: a call waits for the write that
carries its item; while one write runs, the calls that arrive meanwhile gather for the next.
No timer, so a lone call is written at once and a burst shares one statement and one commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from bridge.errors import StoreError

__all__ = ["Gathered"]

T = TypeVar("T")
R = TypeVar("R")


class Gathered(Generic[T, R]):
    """``write(items)`` returns one result per item, or an exception for that item alone;
    an exception raised by ``write`` itself fails every item of the batch (StoreError)."""

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_batch: int = 256,
    ) -> None:
        """``max_batch`` bounds one statement (its parameters, its locks, its duration)."""
        self._write = write
        self._max = max_batch
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> R:
        """The result of ``item``'s write; raises what the write gave for it."""
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, fut))
        if self._task is None:
            self._task = asyncio.ensure_future(self._flush())
        return await fut

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self._max], self._waiting[self._max :]
                try:
                    results = await self._write([item for item, _ in batch])
                except BaseException as exc:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(StoreError(f"not written: {exc}"))
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (_, fut), result in zip(batch, results, strict=True):
                    if fut.done():
                        continue
                    if isinstance(result, BaseException):
                        fut.set_exception(result)
                    else:
                        fut.set_result(result)
        finally:
            self._task = None
