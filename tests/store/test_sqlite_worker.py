"""The SQLite writer: which commits are fsynced, and a WAL that starts over under steady writes."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from bridge.store.sqlite import worker as _sqlite_worker
from bridge.store.sqlite.worker import SqliteWorker, writer_should_finish


def _init(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS t (b BLOB)")


def _sync_level(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA synchronous").fetchone()[0])


async def test_sqlite_worker_fsyncs_durable_groups_only(tmp_path: Path) -> None:
    worker = SqliteWorker(str(tmp_path / "w.db"), _init, synchronous="full")
    worker.start()
    try:
        # The level each job's group commits with: FULL (2) for durable work, NORMAL (1) for
        # bookkeeping, in any order.
        for durable in (True, False, False, True, False):
            level = await worker.call(_sync_level, durable=durable)
            assert level == (2 if durable else 1)
        # A group that mixes both is durable.
        levels = await asyncio.gather(
            worker.call(_sync_level, durable=False),
            worker.call(_sync_level, durable=True),
            worker.call(_sync_level, durable=False),
        )
        assert 2 in levels and set(levels) <= {1, 2}
    finally:
        worker.stop()


async def test_sqlite_worker_normal_setting_is_never_raised(tmp_path: Path) -> None:
    worker = SqliteWorker(str(tmp_path / "w.db"), _init, synchronous="normal")
    worker.start()
    try:
        assert await worker.call(_sync_level) == 1
        assert await worker.call(_sync_level, durable=False) == 1
    finally:
        worker.stop()


def _insert(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO t VALUES (randomblob(3000))")  # a page and a bit


async def test_sqlite_worker_finishing_the_checkpoint_lets_the_wal_start_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sqlite_worker, "_CHECKPOINT_INTERVAL_S", 3600)  # no background pass
    path = tmp_path / "w.db"
    worker = SqliteWorker(str(path), _init, synchronous="normal")
    worker.start()
    wal = Path(f"{path}-wal")
    try:
        for _ in range(60):
            await asyncio.gather(*(worker.call(_insert) for _ in range(5)))
        first = wal.stat().st_size
        assert first > 300 * 4096
        # What the checkpointer asks for when the WAL is long and its tail short; the first
        # write after a complete checkpoint starts the WAL file over from its beginning.
        worker._queue.put(_sqlite_worker._FINISH_CHECKPOINT)
        for _ in range(60):
            await asyncio.gather(*(worker.call(_insert) for _ in range(5)))
        assert wal.stat().st_size <= first * 1.1, (first, wal.stat().st_size)  # not 2x
        count = await worker.call(lambda c: c.execute("SELECT COUNT(*) FROM t").fetchone()[0])
        assert count == 600
    finally:
        worker.stop()


def test_sqlite_worker_asks_the_writer_only_for_a_long_wal_with_a_short_tail() -> None:
    restart, tail, force = (
        _sqlite_worker._WAL_RESTART_FRAMES,
        _sqlite_worker._WAL_TAIL_FRAMES,
        _sqlite_worker._WAL_FORCE_FRAMES,
    )
    assert not writer_should_finish(restart - 1, restart - 1)  # short WAL: nothing to gain
    assert writer_should_finish(restart, restart)  # long, fully copied
    assert writer_should_finish(restart + tail, restart)  # long, short tail
    assert not writer_should_finish(restart + tail + 1, restart)  # tail too long to copy now
    assert writer_should_finish(force, 0)  # far too long: copy whatever is left


async def test_sqlite_worker_a_failing_job_undoes_only_its_own_work(tmp_path: Path) -> None:
    """A group runs its jobs without savepoints; when one fails, the whole pass is rolled back
    (the rollback hook fires) and the group runs again with a savepoint per job: the others
    commit, once, and only the failing job's writes are gone."""
    rollbacks: list[int] = []
    worker = SqliteWorker(
        str(tmp_path / "w.db"), _init, synchronous="normal", on_rollback=lambda: rollbacks.append(1)
    )
    worker.start()
    runs: dict[str, int] = {}

    def put(conn: sqlite3.Connection, tag: str) -> str:
        runs[tag] = runs.get(tag, 0) + 1
        conn.execute("INSERT INTO t VALUES (?)", (tag.encode(),))
        if tag == "bad":
            raise ValueError("this job fails after its write")
        return tag

    def hold(_conn: sqlite3.Connection) -> None:
        import time

        time.sleep(0.2)  # the writer is busy: the next calls queue up into one group

    try:
        tags = ["a", "b", "bad", "c"]
        held = asyncio.ensure_future(worker.call(hold))
        await asyncio.sleep(0.05)
        results = await asyncio.gather(*(worker.call(put, t) for t in tags), return_exceptions=True)
        await held
        assert results[:2] == ["a", "b"] and results[3] == "c"
        assert isinstance(results[2], ValueError)
        stored = await worker.call(lambda c: sorted(r[0] for r in c.execute("SELECT b FROM t")))
        assert stored == [b"a", b"b", b"c"]
        # the first pass stops at the failure; the second runs every job
        assert runs == {"a": 2, "b": 2, "bad": 2, "c": 1}
        assert len(rollbacks) == 2  # the first pass, then the failing job's savepoint
        # A group without failures runs each job once.
        runs.clear()
        held = asyncio.ensure_future(worker.call(hold))
        await asyncio.sleep(0.05)
        assert await asyncio.gather(*(worker.call(put, t) for t in "xyz")) == ["x", "y", "z"]
        await held
        assert runs == {"x": 1, "y": 1, "z": 1} and len(rollbacks) == 2
    finally:
        worker.stop()


async def test_sqlite_worker_large_group_stops_waiting_at_a_lull(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a group with company, a small group waits the whole commit delay for more; a
    group of _BUSY_BATCH or more commits at the first lull instead (here: long delay, short
    lull, so which rule ended the wait shows in the time taken)."""
    monkeypatch.setattr(_sqlite_worker, "_COMMIT_DELAY_S", 0.6)
    monkeypatch.setattr(_sqlite_worker, "_BUSY_LULL_S", 0.02)
    loop = asyncio.get_running_loop()
    worker = SqliteWorker(str(tmp_path / "w.db"), _init, synchronous="normal")
    worker.start()
    try:
        # Two jobs queued while the writer is held: one group of two, so the next has company.
        hold = asyncio.ensure_future(worker.call(lambda conn: time.sleep(0.05)))
        await asyncio.sleep(0.01)
        await asyncio.gather(hold, worker.call(_insert), worker.call(_insert))
        started = loop.time()
        await asyncio.gather(*(worker.call(_insert) for _ in range(12)))
        large = loop.time() - started  # a group of 12 (with company after it)
        started = loop.time()
        await asyncio.gather(*(worker.call(_insert) for _ in range(3)))
        small = loop.time() - started
    finally:
        worker.stop()
    assert small >= 0.5  # waited for company that could still come
    assert large < small  # did not: it was already a crowd
