"""bridge/store/_pg_batch.py: the gathering of writes, without a database."""

from __future__ import annotations

import asyncio

from bridge.errors import StoreError
from bridge.store._pg_batch import Gathered


async def test_gathered_writes_what_waits_together_in_bounded_batches() -> None:
    batches: list[list[int]] = []

    async def write(items: list[int]) -> list[int | BaseException]:
        batches.append(items)
        await asyncio.sleep(0)  # a round trip: later calls gather meanwhile
        return [ValueError(f"odd {i}") if i == 7 else i * 10 for i in items]

    gathered: Gathered[int, int] = Gathered(write, max_batch=4)
    results = await asyncio.gather(*(gathered.submit(i) for i in range(10)), return_exceptions=True)
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert results[:7] == [0, 10, 20, 30, 40, 50, 60] and results[8:] == [80, 90]
    assert isinstance(results[7], ValueError)  # an item's own failure is its alone
    assert await gathered.submit(11) == 110  # a lone call is written at once, on its own
    assert batches[-1] == [11]


async def test_gathered_failing_write_fails_its_batch_only() -> None:
    calls = 0

    async def write(items: list[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database gone")
        return list(items)

    gathered: Gathered[int, int] = Gathered(write, max_batch=2)
    results = await asyncio.gather(*(gathered.submit(i) for i in range(3)), return_exceptions=True)
    assert [type(r) for r in results[:2]] == [StoreError, StoreError]
    assert results[2] == 2
    assert "database gone" in str(results[0])
