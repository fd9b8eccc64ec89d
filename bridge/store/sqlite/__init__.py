"""The embedded SQLite store: :class:`SqliteStore` (``store.py``) composed from one part per
concern (``ingest``, ``correlation``, ``subscribers``, ``deliveries``, ``reads``) over the
writer thread (``worker``) and the schema (``schema``)."""

from bridge.store.sqlite.store import SqliteStore

__all__ = ["SqliteStore"]
