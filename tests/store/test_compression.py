"""bridge/store/compression.py: what the SQLite inbox keeps of a raw request."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import orjson

from bench.payload import EventFactory
from bridge.store.compression import packed, unpacked
from bridge.store.sqlite import SqliteStore
from tests.store.store_factories import event, ingest, normalized


def test_a_request_comes_back_exactly_and_an_uncompressed_row_reads_as_it_is() -> None:
    _, body, _ = EventFactory(tag="zip").make(1)
    stored = packed(body)
    assert len(stored) < len(body) // 3
    assert unpacked(stored) == body
    assert unpacked(body) == body  # a row stored before compression, or by PostgreSQL
    assert unpacked(b"  {}") == b"  {}"


async def test_the_sqlite_inbox_keeps_requests_compressed(tmp_path: Path) -> None:
    store = SqliteStore(str(tmp_path / "z.db"))
    await store.open()
    try:
        await ingest(store, "evt_z", normalized(event("cs_z")))
        assert (await store.counts())["inbox"] == 1
    finally:
        await store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "z.db")) as conn:
        (stored,) = conn.execute("SELECT payload FROM inbox").fetchone()
    assert orjson.loads(unpacked(bytes(stored)))["id"] == "evt_z"
    assert bytes(stored)[:1] == b"x"
