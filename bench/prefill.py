"""PREFILL for the store-scale workload: write ``n`` stored events straight into a SQLite file
in paybridge's own schema (:func:`bridge.store.sqlite.schema.migrate`), without the service.

Rows are built from one real request of the bench (parsed and normalized by the real Stripe
adapter); each copy gets fresh provider ids (the same substitution the load generator uses)
and fresh canonical ids and dedupe keys, so the indexes hold ``n`` distinct keys. One inbox row
and its canonical events per copy, laid out as the store lays them (the raw request
compressed, event bodies referring to its object: bridge.store.bodies, compression); no
subscribers, so no delivery rows.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import bridge  # noqa: F401  (load order: bridge before adapters)
from adapters.stripe import StripeAdapter
from bench.payload import BENCH_SECRET, EventFactory
from bridge.events import OBJECT_MARK, event_refs
from bridge.store.bodies import object_json
from bridge.store.compression import packed
from bridge.store.sqlite.schema import migrate

__all__ = ["prefill_sqlite"]

_BATCH = 10_000


def _rows(n: int, tag: str) -> Iterator[tuple[tuple[object, ...], list[tuple[object, ...]]]]:
    factory = EventFactory(tag=tag)
    adapter = StripeAdapter([BENCH_SECRET], tolerance_s=300)
    _, body, _ = factory.make(0)
    provider = adapter.parse(body)
    events = adapter.normalize(provider).events
    marker = provider.id[len("evt_") :]  # the unique part shared by every id in the template
    shared = object_json(provider.payload)
    templates = [(e, _stored(e.to_json(), shared), event_refs(e)) for e in events]
    now = time.time()
    for i in range(n):
        event_id, payload, _ = factory.make(i)
        suffix = event_id[len("evt_") :]
        inbox: tuple[object, ...] = (
            "stripe",
            event_id,
            provider.type,
            now,
            "processed",
            None,
            len(events),
            packed(payload),
        )
        rows: list[tuple[object, ...]] = []
        for k, (ev, blob, refs) in enumerate(templates):
            new_id = f"evt_prefill_{i:09d}_{k}"
            rows.append(
                (
                    new_id,
                    ev.dedupe_key.replace(marker, suffix),
                    ev.type,
                    ev.source,
                    event_id,
                    ev.created,
                    now,
                    blob.replace(marker.encode(), suffix.encode()).replace(
                        ev.id.encode(), new_id.encode()
                    ),
                    *(r.replace(marker, suffix) if r else None for r in refs),
                    event_id if OBJECT_MARK in blob else None,
                )
            )
        yield inbox, rows


def _stored(body: bytes, shared: bytes | None) -> bytes:
    """An event body as the store keeps it: its copy of the request's object left out."""
    return body.replace(shared, OBJECT_MARK) if shared and shared in body else body


def prefill_sqlite(path: Path, n: int, tag: str = "prefill") -> float:
    """Create ``path`` with ``n`` stored events (see the module docstring); returns seconds."""
    start = time.monotonic()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    migrate(conn)
    inbox_batch: list[tuple[object, ...]] = []
    event_batch: list[tuple[object, ...]] = []
    for inbox, rows in _rows(n, tag):
        inbox_batch.append(inbox)
        event_batch.extend(rows)
        if len(inbox_batch) >= _BATCH:
            _flush(conn, inbox_batch, event_batch)
    _flush(conn, inbox_batch, event_batch)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.monotonic() - start


def _flush(
    conn: sqlite3.Connection, inbox: list[tuple[object, ...]], events: list[tuple[object, ...]]
) -> None:
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO inbox (provider, provider_event_id, type, received_at, status,"
        " ignored_reason, event_count, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        inbox,
    )
    conn.executemany(
        "INSERT INTO events (id, dedupe_key, type, source, source_event_id, created,"
        " stored_at, body, customer, subscription, invoice, object_of)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        events,
    )
    conn.execute("COMMIT")
    inbox.clear()
    events.clear()
