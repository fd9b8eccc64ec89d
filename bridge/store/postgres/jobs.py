"""PostgreSQL store, named jobs: a lease and a checkpoint per job (``reconcile:stripe``).
Under READ COMMITTED two instances acquiring at once both update the one row in turn; the
second re-checks the lease the first just took and gets nothing."""

from __future__ import annotations

from bridge.store.base import JobLease
from bridge.store.operator_rows import ACQUIRE_JOB, INSERT_JOB, RELEASE_JOB, SAVE_JOB, render
from bridge.store.parts import Lease
from bridge.store.postgres.pool import PgPool

__all__ = ["PgJobs"]


def _q(sql: str) -> str:
    return render(sql, lambda n: f"${n}")


_INSERT, _ACQUIRE, _SAVE, _RELEASE = map(_q, (INSERT_JOB, ACQUIRE_JOB, SAVE_JOB, RELEASE_JOB))


class PgJobs:
    """The job part of the PostgreSQL store."""

    def __init__(self, db: PgPool) -> None:
        self._db = db

    async def acquire_job(self, name: str, lease: Lease) -> JobLease | None:
        """The lease, or None while another owner holds it; raises :class:`StoreError`."""
        async with self._db.tx(durable=False) as conn:
            await conn.execute(_INSERT, name, lease.now)
            row = await conn.fetchrow(
                _ACQUIRE, lease.owner, lease.until, lease.now, name, lease.owner, lease.now
            )
        return None if row is None else JobLease(name, lease.owner, lease.until, row[0])

    async def save_job(self, name: str, checkpoint: str | None, lease: Lease) -> bool:
        """False when the lease was lost; raises :class:`StoreError`."""
        async with self._db.conn() as conn:
            saved = await conn.fetchval(
                _SAVE, checkpoint, lease.until, lease.now, name, lease.owner
            )
        return saved is not None

    async def release_job(self, name: str, owner: str) -> None:
        async with self._db.conn(durable=False) as conn:
            await conn.execute(_RELEASE, name, owner)
