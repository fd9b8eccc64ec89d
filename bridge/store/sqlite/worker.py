"""One thread that owns the SQLite connection and commits in groups.

Callers submit a function ``fn(conn, *args)``; the thread drains everything waiting, runs it
all inside one transaction, commits once, and then resolves every caller's future. A failing
function undoes only its own work: the group is then run again with a SAVEPOINT per function
(``_run_all``); a failing COMMIT fails the whole group. An idle store commits a lone request at
once; after a shared group (more than one request), the next waits up to 2 ms for more
(``_COMMIT_DELAY_S``), so requests arriving a few milliseconds apart share an fsync; a group
already large stops waiting at the first 0.5 ms lull. A fixed timer on every commit would
halve throughput (see bench/PERFORMANCE.md).

Durable and bookkeeping work: with ``synchronous=full`` a group that holds at least one
``durable`` job (an ingest, an admin change) is fsynced before anyone hears of it; a group of
bookkeeping jobs only (attempt outcomes, leases, claims: ``durable=False``) commits with
``synchronous=NORMAL``, no fsync. WAL frames are appended in order and checksummed, so after a
power cut the database is a prefix of the commits: a lost outcome means the delivery is sent
again (at least once, same ``webhook-id``), never that an event is lost. This is PostgreSQL's
``synchronous_commit = off`` for one transaction. It takes the fsyncs of delivery outcomes off
the ingest path: at 500 events/s with a webhook and a bus handler, five of every six commits
are bookkeeping.

Why not aiosqlite: it runs one statement per thread hop and has no public way to run a batch
of functions inside one transaction on its thread, which group commit needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from bridge.errors import StoreError

__all__ = ["SqliteWorker", "writer_should_finish"]

log = logging.getLogger(__name__)
T = TypeVar("T")
_Job = tuple[
    Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]", asyncio.AbstractEventLoop, bool
]
_Result = tuple["asyncio.Future[Any]", Any, BaseException | None]
_STOP = object()
_FINISH_CHECKPOINT = object()
_MAX_BATCH = 512
# Commit delay (PostgreSQL's ``commit_delay`` idea): when the previous group was shared (more
# than one job, or more work already waiting when it committed), a new group waits up to
# _COMMIT_DELAY_S for more work before it commits. At 500 requests/s (one every 2 ms) every
# request otherwise committed alone: an fsync and the same index pages rewritten into the WAL per
# request, 0.7 ms of writer CPU per event with a webhook and a bus handler. A lone caller (an
# idle store, or one client posting one request after another) commits at once.
_COMMIT_DELAY_S = 0.002
# Once a group holds _BUSY_BATCH jobs, it stops gathering at the first gap of _BUSY_LULL_S
# between jobs: under a burst the jobs come every ~0.2 ms, and after the last client's request
# is in, the rest of the 2 ms delay was spent with every connection waiting on this group
# (bench/PERFORMANCE.md, "Measurements behind the code"). Small groups (500 requests/s) keep
# the full delay.
_BUSY_BATCH = 8
_BUSY_LULL_S = 0.0005
_CHECKPOINT_INTERVAL_S = 0.25
# The WAL only starts over (and stops growing) once a checkpoint has copied *every* frame and the
# next write begins. Under steady writes the background checkpoint never quite catches up, so
# once the WAL is this long and the background pass left only a short tail, the writer copies
# the tail itself between two groups (a few milliseconds) and the WAL restarts. Without this it
# grew to the autocheckpoint cap (200 MB) and every commit after that ran a checkpoint.
_WAL_RESTART_FRAMES = 4096
_WAL_TAIL_FRAMES = 1024
_WAL_FORCE_FRAMES = 20_000  # past this, the writer finishes even a long tail
# Past this many WAL pages the writer checkpoints itself after all (the background checkpointer
# cannot keep up, e.g. a reader pins the WAL): the WAL must not grow without bound.
_WRITER_AUTOCHECKPOINT_PAGES = 50_000


def writer_should_finish(frames: int, copied: int) -> bool:
    """After a background checkpoint that found ``frames`` frames in the WAL and copied
    ``copied`` of them: should the writer copy the rest between two groups (so the WAL starts
    over)? When the WAL is long and the tail short, or the WAL is far too long."""
    return frames >= _WAL_FORCE_FRAMES or (
        frames >= _WAL_RESTART_FRAMES and frames - copied <= _WAL_TAIL_FRAMES
    )


def _settle(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, value, exc in results:
        if fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(value)


class SqliteWorker:
    """Owns a ``sqlite3`` connection on a dedicated thread; see the module docstring."""

    def __init__(
        self,
        path: str,
        init: Callable[[sqlite3.Connection], object],
        *,
        synchronous: Literal["full", "normal"] = "full",
        on_rollback: Callable[[], object] = lambda: None,
    ) -> None:
        """``on_rollback``: called on this thread whenever work is rolled back, so state
        cached from inside a transaction (e.g. rows read after a write) can be dropped."""
        self._on_rollback = on_rollback
        self._path = path
        self._synchronous = synchronous
        self._init = init
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._init_error: BaseException | None = None
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpoints = threading.Event()
        self._sync_now = synchronous.upper()  # the connection's current PRAGMA synchronous

    def start(self) -> None:
        """Start the thread, open the connection and run ``init`` (migrations) on it."""
        self._thread = threading.Thread(target=self._run, name="paybridge-sqlite", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._init_error is not None:
            raise StoreError(f"cannot open SQLite store: {self._init_error}") from self._init_error
        if self._path != ":memory:":
            self._stop_checkpoints.clear()
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="paybridge-sqlite-checkpoint", daemon=True
            )
            self._checkpointer.start()

    def stop(self) -> None:
        """Finish queued work and close the connection."""
        self._stop_checkpoints.set()
        if self._checkpointer is not None:
            self._checkpointer.join(timeout=30)
            self._checkpointer = None
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout=30)
        self._thread = None

    def _checkpoint_loop(self) -> None:
        """Copy the WAL into the database from a connection of its own, off the commit path:
        the writer's automatic checkpoints (an fsync of the database file every 1000 pages,
        inside a commit) would stall every request of that group commit."""
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as exc:
            log.warning("sqlite checkpointer cannot connect: %s", exc)
            return
        try:
            while not self._stop_checkpoints.wait(_CHECKPOINT_INTERVAL_S):
                try:
                    _, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:  # busy or I/O trouble: the next round retries
                    log.debug("sqlite checkpoint skipped: %s", exc)
                    continue
                if writer_should_finish(frames, copied):
                    self._queue.put(_FINISH_CHECKPOINT)
        finally:
            conn.close()

    def call(self, fn: Callable[..., T], *args: Any, durable: bool = True) -> asyncio.Future[T]:
        """Run ``fn(conn, *args)`` in the next committed group: await the returned future for
        its result; it raises :class:`StoreError` when the database fails (the caller's work is
        then rolled back). ``durable=False``: bookkeeping whose loss in a power cut only
        repeats work (module docstring). A plain function handing back the future, not a
        coroutine: one frame less on every request's way in and out.

        Raises:
            StoreError: the store is closed.
        """
        if self._thread is None:
            raise StoreError("store is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, args, fut, loop, durable))
        return fut

    # -- the thread ---------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # full: a commit is on disk before the provider gets its 200, power loss included (one
        # fsync per group commit). normal: no fsync at commit; survives a crash of the process,
        # not of the machine; lower latency when requests trickle in one by one.
        conn.execute(f"PRAGMA synchronous={self._synchronous.upper()}")
        conn.execute(f"PRAGMA wal_autocheckpoint={_WRITER_AUTOCHECKPOINT_PAGES}")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _run(self) -> None:
        try:
            conn = self._connect()
            self._init(conn)
        except BaseException as exc:
            self._init_error = exc
            self._ready.set()
            return
        self._ready.set()
        last_group_shared = False
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    break
                if first is _FINISH_CHECKPOINT:
                    self._finish_checkpoint(conn)
                    continue
                batch: list[_Job] = [first]
                stop = checkpoint = False
                wait_until = time.monotonic() + _COMMIT_DELAY_S if last_group_shared else 0.0
                while len(batch) < _MAX_BATCH:
                    until = wait_until
                    if len(batch) >= _BUSY_BATCH:  # a busy store: stop at the first lull
                        until = min(wait_until, time.monotonic() + _BUSY_LULL_S)
                    try:
                        nxt = self._next_job(until)
                    except queue.Empty:
                        break
                    if nxt is _STOP:
                        stop = True
                        break
                    if nxt is _FINISH_CHECKPOINT:
                        checkpoint = True
                        continue
                    batch.append(nxt)
                self._run_batch(conn, batch)
                last_group_shared = len(batch) > 1 or not self._queue.empty()
                if checkpoint:
                    self._finish_checkpoint(conn)
                if stop:
                    break
        finally:
            conn.close()

    def _next_job(self, wait_until: float) -> Any:
        """The next queued item, waiting until ``wait_until`` (monotonic) for one to arrive.

        Raises:
            queue.Empty: nothing came.
        """
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            left = wait_until - time.monotonic()
            if left <= 0:
                raise
            return self._queue.get(timeout=left)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        if not self._begin(conn, batch):
            return
        results: list[_Result]
        try:
            if len(batch) == 1:  # the transaction is the job: no savepoint needed
                fn, args, fut, _, _ = batch[0]
                try:
                    results = [(fut, fn(conn, *args), None)]
                except Exception as exc:
                    self._rollback(conn)
                    failure: BaseException = exc
                    if isinstance(exc, sqlite3.Error):
                        failure = StoreError(f"database error: {exc}")
                    self._dispatch([(fut, None, failure)], batch)
                    return
            else:
                found = self._run_all(conn, batch)
                if found is None:  # a job failed: again, each job in a savepoint of its own
                    if not self._begin(conn, batch):
                        return
                    found = [self._run_job(conn, fn, args, fut) for fn, args, fut, _, _ in batch]
                results = found
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # The transaction itself is gone (commit failed, or SQLite rolled it back after
            # a full disk or I/O error): nothing of the group is kept, so nobody gets success.
            log.error("sqlite commit failed: %s", exc)
            self._rollback(conn)
            err = StoreError(f"commit failed: {exc}")
            results = [(fut, None, err) for _, _, fut, _, _ in batch]
        self._dispatch(results, batch)

    def _begin(self, conn: sqlite3.Connection, batch: list[_Job]) -> bool:
        """Start the group's transaction; on failure every job gets a StoreError (False)."""
        try:
            # Outside the transaction: SQLite refuses to change it inside one.
            self._commit_mode(conn, any(job[4] for job in batch))
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            err = StoreError(f"database unavailable: {exc}")
            self._dispatch([(fut, None, err) for _, _, fut, _, _ in batch], batch)
            return False
        return True

    def _run_all(self, conn: sqlite3.Connection, batch: list[_Job]) -> list[_Result] | None:
        """Every job of ``batch`` in the open transaction, without savepoints: the usual case,
        where none fails, runs two statements less per job (a SAVEPOINT and a RELEASE, each a
        GIL round trip of this thread). When a job fails, the whole pass is rolled back and
        None returned, and the caller runs the batch again with a savepoint per job. That second
        pass is what the first would have been: jobs are functions of the database, and the one
        thing they keep beside it (the store's subscriber cache) is dropped on every rollback."""
        out: list[_Result] = []
        for fn, args, fut, _, _ in batch:
            try:
                out.append((fut, fn(conn, *args), None))
            except Exception:
                self._rollback(conn)
                return None
        return out

    @staticmethod
    def _finish_checkpoint(conn: sqlite3.Connection) -> None:
        """Copy what the background checkpoint left of the WAL, between two groups (no write
        can land meanwhile), so the next write starts the WAL over."""
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            log.debug("sqlite checkpoint skipped: %s", exc)

    def _commit_mode(self, conn: sqlite3.Connection, durable: bool) -> None:
        """fsync this commit only if it holds durable work (``synchronous: full`` only)."""
        if self._synchronous != "full":
            return
        want = "FULL" if durable else "NORMAL"
        if want != self._sync_now:
            conn.execute(f"PRAGMA synchronous={want}")
            self._sync_now = want

    def _rollback(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        self._on_rollback()

    def _run_job(
        self,
        conn: sqlite3.Connection,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        fut: asyncio.Future[Any],
    ) -> tuple[asyncio.Future[Any], Any, BaseException | None]:
        """Run one job in a savepoint. Its own failure undoes only its work; a failure that
        lost the whole transaction is re-raised (sqlite3.Error) to fail the group."""
        conn.execute("SAVEPOINT job")
        try:
            value = fn(conn, *args)
        except Exception as exc:
            if not conn.in_transaction:
                raise sqlite3.OperationalError(f"transaction lost: {exc}") from exc
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            self._on_rollback()
            if isinstance(exc, sqlite3.Error):
                return fut, None, StoreError(f"database error: {exc}")
            return fut, None, exc
        conn.execute("RELEASE job")
        return fut, value, None

    @staticmethod
    def _dispatch(
        results: list[tuple[asyncio.Future[Any], Any, BaseException | None]], batch: list[_Job]
    ) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for res, (_, _, _, loop, _) in zip(results, batch, strict=True):
            by_loop.setdefault(loop, []).append(res)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # loop closed: nobody waits any more
                loop.call_soon_threadsafe(_settle, items)
