"""The PostgreSQL store (asyncpg): several paybridge instances share one database.

Semantics are those of :mod:`bridge.store.base`; composed like every backend
(:mod:`bridge.store.composed`) from its parts in this package. What makes it safe with several
instances:

- **Uniques, never violations.** The inbox row and each event are written with
  ``INSERT … ON CONFLICT DO NOTHING RETURNING``: when two instances ingest the same provider
  event (or two provider events naming the same fact) at once, the second waits for the
  first to commit and then inserts nothing; no transaction fails with a unique violation.
- **PaymentIntent decisions are serialized per PI.** Every transaction that stores a link,
  a standalone PI, a held decision or resolves one first takes
  ``pg_advisory_xact_lock(hashtextextended('pi:' || pi, 0))``. Under READ COMMITTED each later
  statement sees what the previous lock holder committed, so a link and a held decision of
  the same PI can never both miss each other (no "emit" of a decision whose link won).
- **No deadlocks.** A transaction takes its locks in one fixed order: the inbox row, then
  its PI locks (sorted, one statement), then its events' dedupe locks (sorted, one
  statement, only when it inserts several events). Cycles are impossible.
- **Claims** use ``FOR UPDATE SKIP LOCKED`` and a lease; ``start_attempt`` succeeds only
  for the lease owner, so two live instances never send the same delivery.

Subscribers are read from the database on every claim and admin call. On the ingest path
they are cached per instance for at most ``subscriber_cache_s`` (default 1 s; 0 disables):
another instance's change is seen within that bound, this instance's own changes at once.

Every database failure raises :class:`bridge.errors.StoreError`; the pool reconnects by
itself when the database comes back.
"""

from __future__ import annotations

from bridge.store.composed import ComposedStore
from bridge.store.postgres.correlation import PgCorrelation
from bridge.store.postgres.deliveries import PgDeliveries
from bridge.store.postgres.ingest import PgIngest
from bridge.store.postgres.jobs import PgJobs
from bridge.store.postgres.pool import PgPool
from bridge.store.postgres.reads import PgReads
from bridge.store.postgres.recovery import PgRecovery
from bridge.store.postgres.retention import PgRetention
from bridge.store.postgres.subscribers import PgSubscribers, SubscriberCache

__all__ = ["PostgresStore"]


class PostgresStore(ComposedStore):
    """See the module docstring. ``url`` is a ``postgresql://`` DSN."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        subscriber_cache_s: float = 1.0,
        command_timeout_s: float | None = 30.0,
    ) -> None:
        self._db = PgPool(
            url, min_size=min_size, max_size=max_size, command_timeout_s=command_timeout_s
        )
        cache = SubscriberCache(subscriber_cache_s)
        ingest = PgIngest(self._db, cache)
        super().__init__(
            ingest=ingest,
            correlation=PgCorrelation(self._db, ingest),
            subscribers=PgSubscribers(self._db, cache),
            deliveries=PgDeliveries(self._db, cache),
            reads=PgReads(self._db),
            recovery=PgRecovery(self._db),
            jobs=PgJobs(self._db),
            retention=PgRetention(self._db),
        )

    async def open(self) -> None:
        """Connect and apply pending migrations; raises :class:`StoreError`."""
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()
