"""SQLite store, subscribers: kept in a cache owned by the writer thread. Every change this
store makes, or rolls back, drops the cache; a commit by another process (a ``paybridge
endpoints`` command beside a running service) is seen through ``PRAGMA data_version``."""

from __future__ import annotations

import asyncio
import sqlite3

from bridge.store.base import Page, Subscriber, SubscriberKind
from bridge.store.planning import subscriber_page
from bridge.store.rows import SUBSCRIBER_COLUMNS, subscriber_from_row, subscriber_params
from bridge.store.sqlite.worker import SqliteWorker

__all__ = ["SqliteSubscribers", "SubscriberCache"]

_MARKS = ", ".join("?" * len(SUBSCRIBER_COLUMNS.split(",")))


class SubscriberCache:
    """Every subscriber row, read once and kept until :meth:`forget` or until another
    connection commits to the file; writer thread only."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] | None = None
        self._data_version = -1

    def get(self, conn: sqlite3.Connection) -> list[Subscriber]:
        # Changes with every commit of another connection, never with this one's own.
        (version,) = conn.execute("PRAGMA data_version").fetchone()
        if self._subscribers is None or version != self._data_version:
            rows = conn.execute(f"SELECT {SUBSCRIBER_COLUMNS} FROM subscribers").fetchall()
            self._subscribers = [subscriber_from_row(r) for r in rows]
            self._data_version = version
        return self._subscribers

    def forget(self) -> None:
        """Drop the cache: a subscriber row changed, or work that read one was rolled back."""
        self._subscribers = None


class SqliteSubscribers:
    """The subscriber part of the SQLite store."""

    def __init__(self, worker: SqliteWorker, cache: SubscriberCache) -> None:
        self._worker = worker
        self._cache = cache

    def put_subscriber(self, sub: Subscriber) -> asyncio.Future[Subscriber]:
        def tx(conn: sqlite3.Connection) -> Subscriber:
            conn.execute(
                f"INSERT OR REPLACE INTO subscribers ({SUBSCRIBER_COLUMNS}) VALUES ({_MARKS})",
                subscriber_params(sub),
            )
            self._cache.forget()
            return sub

        return self._worker.call(tx)

    def get_subscriber(self, subscriber_id: str) -> asyncio.Future[Subscriber | None]:
        def tx(conn: sqlite3.Connection) -> Subscriber | None:
            return next((s for s in self._cache.get(conn) if s.id == subscriber_id), None)

        return self._worker.call(tx, durable=False)

    def delete_subscriber(self, subscriber_id: str) -> asyncio.Future[bool]:
        def tx(conn: sqlite3.Connection) -> bool:
            gone = conn.execute("DELETE FROM subscribers WHERE id = ?", (subscriber_id,)).rowcount
            conn.execute(
                "DELETE FROM deliveries WHERE subscriber_id = ? AND status = 'pending'",
                (subscriber_id,),
            )
            self._cache.forget()
            return gone > 0

        return self._worker.call(tx)

    def list_subscribers(
        self, kind: SubscriberKind | None, livemode: bool | None, offset: int, limit: int
    ) -> asyncio.Future[Page[Subscriber]]:
        def tx(conn: sqlite3.Connection) -> Page[Subscriber]:
            return subscriber_page(self._cache.get(conn), kind, livemode, offset, limit)

        return self._worker.call(tx, durable=False)
