"""PostgreSQL store, subscribers: read fresh from the database on every call (another
instance may change them); writes drop this instance's ingest-path cache."""

from __future__ import annotations

from bridge.store._pg_conn import PgPool
from bridge.store._rows import SUBSCRIBER_COLUMNS, subscriber_from_row, subscriber_params
from bridge.store.base import Page, Subscriber, SubscriberKind

__all__ = ["PgSubscribers"]

_COLUMNS = [c.strip() for c in SUBSCRIBER_COLUMNS.split(",")]
_UPSERT = (
    f"INSERT INTO subscribers ({SUBSCRIBER_COLUMNS})"
    f" VALUES ({', '.join(f'${i + 1}' for i in range(len(_COLUMNS)))})"
    f" ON CONFLICT (id) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in _COLUMNS[1:])}"
)


class PgSubscribers:
    """Mixed into :class:`bridge.store.postgres.PostgresStore`."""

    _db: PgPool

    def _forget_subscribers(self) -> None:
        raise NotImplementedError

    # -- subscribers --------------------------------------------------------------------------
    async def put_subscriber(self, sub: Subscriber) -> Subscriber:
        """Insert or replace ``sub`` (by id); raises :class:`StoreError`."""
        async with self._db.conn() as conn:
            await conn.execute(_UPSERT, *subscriber_params(sub))
        self._forget_subscribers()
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
        self._forget_subscribers()
        return gone is not None

    async def list_subscribers(
        self,
        *,
        kind: SubscriberKind | None = None,
        livemode: bool | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[Subscriber]:
        """Newest first, then by id; raises :class:`StoreError`."""
        where = "WHERE ($1::text IS NULL OR kind = $1) AND ($2::bool IS NULL OR livemode = $2)"
        async with self._db.conn() as conn:
            count = await conn.fetchval(f"SELECT COUNT(*) FROM subscribers {where}", kind, livemode)
            rows = await conn.fetch(
                f"SELECT {SUBSCRIBER_COLUMNS} FROM subscribers {where}"
                " ORDER BY created_at DESC, id LIMIT $3 OFFSET $4",
                kind,
                livemode,
                limit,
                offset,
            )
        return Page(int(count), [subscriber_from_row(r) for r in rows])
