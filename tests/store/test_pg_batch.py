"""bridge/store/postgres/batch.py: writes batched while one is in flight, without a database."""

from __future__ import annotations

import asyncio

import pytest

from bridge.errors import StoreError
from bridge.store.postgres.batch import BatchedWrites


async def test_batched_writes_writes_what_waits_together_in_bounded_batches() -> None:
    batches: list[list[int]] = []

    async def write(items: list[int]) -> list[int | BaseException]:
        batches.append(items)
        await asyncio.sleep(0)  # a round trip: later calls gather meanwhile
        return [ValueError(f"odd {i}") if i == 7 else i * 10 for i in items]

    batched: BatchedWrites[int, int] = BatchedWrites(write, max_batch=4)
    results = await asyncio.gather(*(batched.submit(i) for i in range(10)), return_exceptions=True)
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert results[:7] == [0, 10, 20, 30, 40, 50, 60] and results[8:] == [80, 90]
    assert isinstance(results[7], ValueError)  # an item's own failure is its alone
    assert await batched.submit(11) == 110  # a lone call is written at once, on its own
    assert batches[-1] == [11]


async def test_batched_writes_failing_write_fails_its_batch_only() -> None:
    calls = 0

    async def write(items: list[int]) -> list[int | BaseException]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("database gone")
        return list(items)

    batched: BatchedWrites[int, int] = BatchedWrites(write, max_batch=2)
    results = await asyncio.gather(*(batched.submit(i) for i in range(3)), return_exceptions=True)
    assert [type(r) for r in results[:2]] == [StoreError, StoreError]
    assert results[2] == 2
    assert "database gone" in str(results[0])


async def test_batched_writes_runs_up_to_parallel_writes_at_once() -> None:
    in_flight = peak = 0
    batches: list[list[int]] = []
    release = asyncio.Event()

    async def write(items: list[int]) -> list[int | BaseException]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        batches.append(items)
        await release.wait()
        in_flight -= 1
        return [i * 10 for i in items]

    batched: BatchedWrites[int, int] = BatchedWrites(write, max_batch=3, parallel=2)
    calls = [asyncio.ensure_future(batched.submit(i)) for i in range(8)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert peak == 2 and batches == [[0, 1, 2], [3, 4, 5]]  # two writes, the rest waits
    release.set()
    assert await asyncio.gather(*calls) == [i * 10 for i in range(8)]
    assert batches[2:] == [[6, 7]] and peak == 2
    # A call that arrives just as the flushers are done is still written.
    assert await batched.submit(9) == 90
    with pytest.raises(ValueError):
        BatchedWrites(write, parallel=0)
