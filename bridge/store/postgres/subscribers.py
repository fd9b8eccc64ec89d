"""PostgreSQL store, subscribers: read fresh from the database on every admin call (another
instance may change them); the ingest path reads them through :class:`SubscriberCache`."""

from __future__ import annotations

import time
from typing import Any

from bridge.store.base import Page, Subscriber, SubscriberKind
from bridge.store.planning import subscriber_page
from bridge.store.postgres.pool import PgPool
from bridge.store.rows import SUBSCRIBER_COLUMNS, subscriber_from_row, subscriber_params

__all__ = ["PgSubscribers", "SubscriberCache"]

_COLUMNS = [c.strip() for c in SUBSCRIBER_COLUMNS.split(",")]
_UPSERT = (
    f"INSERT INTO subscribers ({SUBSCRIBER_COLUMNS})"
    f" VALUES ({', '.join(f'${i + 1}' for i in range(len(_COLUMNS)))})"
    f" ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in _COLUMNS[1:])}"
)


class SubscriberCache:
    """This instance's copy of every subscriber, kept for at most ``max_age_s`` (0 disables):
    another instance's change is seen within that bound, this instance's own changes at once
    (they call :meth:`forget`)."""

    def __init__(self, max_age_s: float) -> None:
        self._max_age_s = max_age_s
        self._subscribers: list[Subscriber] | None = None
        self._loaded_at = 0.0

    def forget(self) -> None:
        self._subscribers = None

    def fresh(self) -> list[Subscriber] | None:
        """The cached subscribers while they are fresh, else None."""
        if time.monotonic() - self._loaded_at < self._max_age_s:
            return self._subscribers
        return None

    async def get(self, conn: Any) -> list[Subscriber]:
        """The fresh copy, or the rows read now on ``conn``."""
        subs = self.fresh()
        if subs is None:
            rows = await conn.fetch(f"SELECT {SUBSCRIBER_COLUMNS} FROM subscribers")
            subs = self._subscribers = [subscriber_from_row(r) for r in rows]
            self._loaded_at = time.monotonic()
        return subs


class PgSubscribers:
    """The subscriber part of the PostgreSQL store."""

    def __init__(self, db: PgPool, cache: SubscriberCache) -> None:
        self._db = db
        self._cache = cache

    async def put_subscriber(self, sub: Subscriber) -> Subscriber:
        """Insert or replace ``sub`` (by id); raises :class:`StoreError`."""
        async with self._db.conn() as conn:
            await conn.execute(_UPSERT, *subscriber_params(sub))
        self._cache.forget()
        return sub

    async def get_subscriber(self, subscriber_id: str) -> Subscriber | None:
        """The subscriber, read fresh from the database; raises :class:`StoreError`."""
        async with self._db.conn() as conn:
            row = await conn.fetchrow(
                f"SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE id = $1", subscriber_id
            )
        return subscriber_from_row(row) if row is not None else None

    async def delete_subscriber(self, subscriber_id: str) -> bool:
        """Delete a subscriber and its pending deliveries; raises :class:`StoreError`."""
        async with self._db.tx() as conn:
            gone = await conn.fetchval(
                "DELETE FROM subscribers WHERE id = $1 RETURNING 1", subscriber_id
            )
            await conn.execute(
                "DELETE FROM deliveries WHERE subscriber_id = $1 AND status = 'pending'",
                subscriber_id,
            )
        self._cache.forget()
        return gone is not None

    async def list_subscribers(
        self, kind: SubscriberKind | None, livemode: bool | None, offset: int, limit: int
    ) -> Page[Subscriber]:
        """Newest first, then by id, read fresh; raises :class:`StoreError`."""
        async with self._db.conn() as conn:
            rows = await conn.fetch(f"SELECT {SUBSCRIBER_COLUMNS} FROM subscribers")
        return subscriber_page(
            [subscriber_from_row(r) for r in rows], kind, livemode, offset, limit
        )
