"""SQLite store, named jobs: a lease and a checkpoint per job (``reconcile:stripe``)."""

from __future__ import annotations

import asyncio
import sqlite3

from bridge.store.base import JobLease
from bridge.store.operator_rows import ACQUIRE_JOB, INSERT_JOB, RELEASE_JOB, SAVE_JOB, render
from bridge.store.parts import Lease
from bridge.store.sqlite.worker import SqliteWorker

__all__ = ["SqliteJobs"]

_Conn = sqlite3.Connection


def _q(sql: str) -> str:
    return render(sql, lambda _n: "?")


_INSERT, _ACQUIRE, _SAVE, _RELEASE = map(_q, (INSERT_JOB, ACQUIRE_JOB, SAVE_JOB, RELEASE_JOB))


class SqliteJobs:
    """The job part of the SQLite store."""

    def __init__(self, worker: SqliteWorker) -> None:
        self._worker = worker

    def acquire_job(self, name: str, lease: Lease) -> asyncio.Future[JobLease | None]:
        def tx(conn: _Conn) -> JobLease | None:
            conn.execute(_INSERT, (name, lease.now))
            row = conn.execute(
                _ACQUIRE, (lease.owner, lease.until, lease.now, name, lease.owner, lease.now)
            ).fetchone()
            return None if row is None else JobLease(name, lease.owner, lease.until, row[0])

        return self._worker.call(tx, durable=False)

    def save_job(self, name: str, checkpoint: str | None, lease: Lease) -> asyncio.Future[bool]:
        def tx(conn: _Conn) -> bool:
            args = (checkpoint, lease.until, lease.now, name, lease.owner)
            return conn.execute(_SAVE, args).fetchone() is not None

        return self._worker.call(tx)

    def release_job(self, name: str, owner: str) -> asyncio.Future[None]:
        def tx(conn: _Conn) -> None:
            conn.execute(_RELEASE, (name, owner))

        return self._worker.call(tx, durable=False)
