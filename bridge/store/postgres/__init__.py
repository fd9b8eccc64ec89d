"""The PostgreSQL store: :class:`PostgresStore` (``store.py``) composed from one part per
concern (``ingest``, ``correlation``, ``subscribers``, ``deliveries``, ``reads``) over the
connection pools (``pool``), group writes (``batch``) and the schema (``schema``)."""

from bridge.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
