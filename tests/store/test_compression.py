"""bridge/store/compression.py: what the SQLite inbox keeps of a raw request."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

from bench.payload import EventFactory
from bridge.store.base import InboxRecord
from bridge.store.compression import packed, unpacked
from bridge.store.sqlite import SqliteStore
from tests.store.store_factories import NOW, event, normalized, record


def test_a_request_comes_back_exactly_and_an_uncompressed_row_reads_as_it_is() -> None:
    _, body, _ = EventFactory(tag="zip").make(1)
    stored = packed(body)
    assert len(stored) < len(body) // 2
    assert unpacked(stored) == body
    assert unpacked(body) == body  # a row stored before compression, or by PostgreSQL
    assert unpacked(b"  {}") == b"  {}"


async def test_the_sqlite_inbox_keeps_requests_compressed(tmp_path: Path) -> None:
    _, body, _ = EventFactory(tag="zip").make(2)
    store = SqliteStore(str(tmp_path / "z.db"))
    await store.open()
    try:
        big = InboxRecord("stripe", "evt_big", "customer.subscription.created", NOW, body)
        small = record("evt_small")
        for rec, n in ((big, normalized(event("cs_big"))), (small, normalized(event("cs_s")))):
            await store.ingest(
                rec, n, now=NOW, correlation_window_s=0, owner="a", lease_s=30, local_handlers=()
            )
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "z.db")) as conn:
        rows = dict(conn.execute("SELECT provider_event_id, payload FROM inbox").fetchall())
    assert unpacked(bytes(rows["evt_big"])) == body and len(rows["evt_big"]) < len(body) // 2
    assert bytes(rows["evt_small"]) == small.payload  # too small to be worth it
