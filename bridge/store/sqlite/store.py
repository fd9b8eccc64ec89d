"""The embedded SQLite store (one process): WAL, group commit on one writer thread.

Semantics are those of :mod:`bridge.store.base`; the single writer thread makes every
transaction serial, so claims can never overlap within the process. Composed like every
backend (:mod:`bridge.store.composed`) from its parts in this package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from bridge.store.composed import ComposedStore
from bridge.store.sqlite.correlation import SqliteCorrelation
from bridge.store.sqlite.deliveries import SqliteDeliveries
from bridge.store.sqlite.ingest import SqliteIngest
from bridge.store.sqlite.jobs import SqliteJobs
from bridge.store.sqlite.reads import SqliteReads
from bridge.store.sqlite.recovery import SqliteRecovery
from bridge.store.sqlite.retention import SqliteRetention
from bridge.store.sqlite.schema import migrate
from bridge.store.sqlite.subscribers import SqliteSubscribers, SubscriberCache
from bridge.store.sqlite.worker import SqliteWorker

__all__ = ["SqliteStore"]


class SqliteStore(ComposedStore):
    """See the module docstring. ``path`` may be ``:memory:`` for tests."""

    def __init__(self, path: str, *, synchronous: Literal["full", "normal"] = "full") -> None:
        self.path = path
        cache = SubscriberCache()
        self._worker = SqliteWorker(
            path, migrate, synchronous=synchronous, on_rollback=cache.forget
        )
        ingest = SqliteIngest(self._worker, cache)
        super().__init__(
            ingest=ingest,
            correlation=SqliteCorrelation(self._worker, ingest),
            subscribers=SqliteSubscribers(self._worker, cache),
            deliveries=SqliteDeliveries(self._worker, cache),
            reads=SqliteReads(self._worker),
            recovery=SqliteRecovery(self._worker, cache),
            jobs=SqliteJobs(self._worker),
            retention=SqliteRetention(self._worker),
        )

    @classmethod
    def from_url(cls, url: str, *, synchronous: Literal["full", "normal"] = "full") -> SqliteStore:
        """``sqlite:///rel.db`` (relative to the working directory), ``sqlite:////abs.db``,
        ``sqlite://:memory:``."""
        rest = url[len("sqlite://") :]
        if rest in (":memory:", "/:memory:"):
            return cls(":memory:", synchronous=synchronous)
        if not rest.startswith("/"):
            raise ValueError("sqlite url must look like sqlite:///relative.db or sqlite:////abs.db")
        path = rest[1:]
        if path and not path.startswith("/"):
            path = str(Path.cwd() / path)
        return cls(path, synchronous=synchronous)

    async def open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._worker.start()

    async def close(self) -> None:
        self._worker.stop()
