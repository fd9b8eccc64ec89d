"""Stores: one contract (:mod:`bridge.store.base`), an embedded SQLite implementation and a
PostgreSQL one for several instances. :func:`create_store` picks one from ``store.url``."""

from __future__ import annotations

from typing import Literal

from bridge.store.base import (
    AttemptRecord,
    Delivery,
    DeliveryOutcome,
    Hold,
    InboxRecord,
    IngestResult,
    Page,
    Store,
    Subscriber,
)

__all__ = [
    "AttemptRecord",
    "Delivery",
    "DeliveryOutcome",
    "Hold",
    "InboxRecord",
    "IngestResult",
    "Page",
    "Store",
    "Subscriber",
    "create_store",
]


def create_store(url: str, *, sqlite_synchronous: Literal["full", "normal"] = "full") -> Store:
    """A store for ``url`` (``sqlite:///relative.db``, ``sqlite:////abs.db``, ``sqlite://:memory:``
    or ``postgresql://…``). Call ``await store.open()`` before use."""
    if url.startswith("sqlite://"):
        from bridge.store.sqlite import SqliteStore

        return SqliteStore.from_url(url, synchronous=sqlite_synchronous)
    if url.startswith(("postgresql://", "postgres://")):
        from bridge.store.postgres import PostgresStore

        return PostgresStore(url)
    raise ValueError(f"unsupported store url scheme: {url.split(':', 1)[0]!r}")
