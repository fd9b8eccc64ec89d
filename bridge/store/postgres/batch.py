"""Group commit for PostgreSQL writes that need no transaction of their own.

:class:`BatchedWrites` is SQLite's writer-thread idea on asyncpg: a call waits for the write that
carries its item; while the writes in flight run, the calls that arrive meanwhile gather for
the next. No timer, so a lone call is written at once and a burst shares one statement and one
commit. With ``parallel`` above 1, that many writes may run at once (on as many pooled
connections): one is being executed and committed by PostgreSQL while the event loop encodes
the next and hands out the answers of the last. The items of one write are never split; two
writes running at once must be safe against each other (the ingest statement takes its locks
in one global order, as two paybridge instances on one database already require).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from bridge.errors import StoreError

__all__ = ["BatchedWrites"]

T = TypeVar("T")
R = TypeVar("R")


class BatchedWrites(Generic[T, R]):
    """``write(items)`` returns one result per item, or an exception for that item alone;
    an exception raised by ``write`` itself fails every item of the batch (StoreError)."""

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_batch: int = 256,
        parallel: int = 1,
    ) -> None:
        """``max_batch`` bounds one statement (its parameters, its locks, its duration);
        ``parallel``, how many writes may be in flight at once."""
        if parallel < 1:
            raise ValueError("parallel must be at least 1")
        self._write = write
        self._max = max_batch
        self._parallel = parallel
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        # Counted when started and when their loop ends (in the same step as its last check
        # of _waiting), never by a done callback: a call arriving in between would otherwise
        # find every slot taken by a flusher that will not look again.
        self._running = 0
        self._flushers: set[asyncio.Task[None]] = set()  # strong references only

    async def submit(self, item: T) -> R:
        """The result of ``item``'s write; raises what the write gave for it."""
        fut: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, fut))
        if self._running < self._parallel:
            self._running += 1
            task = asyncio.ensure_future(self._flush())
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        return await fut

    async def _flush(self) -> None:
        """Write batches while calls are waiting (one flusher of up to ``parallel``)."""
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
            self._running -= 1
