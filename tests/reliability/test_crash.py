"""Issue #6, crash: a paybridge process (SQLite store, one webhook endpoint, one durable bus
handler) is SIGKILLed while 2000+ signed Stripe events stream in over 32 connections. After a
restart, every event that got a 2xx reaches the receiver and the bus handler, and the store
holds every canonical fact exactly once."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from tests.reliability.conftest import ServiceFactory
from tests.reliability.harness import (
    VerifyingReceiver,
    blast,
    config_data,
    facts_of,
    subscription_pair,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow

N_SUBS = 1000  # two provider events each: 2000 posts, plus 5 % re-sent duplicates
KILL_AT = 700  # SIGKILL after this many 2xx answers
STARTED = "customer.subscription.started"


def _bodies(seed: int) -> list[bytes]:
    bodies = [b for i in range(N_SUBS) for b in subscription_pair(f"sub_crash{i:05d}")]
    rng = random.Random(seed)
    bodies += rng.sample(bodies, len(bodies) // 20)  # Stripe sends some events twice
    rng.shuffle(bodies)
    return bodies


def _query(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _handled(record: Path) -> set[str]:
    return {str(r[0]) for r in _query(record, "SELECT event_id FROM handled")}


def _expected(bodies: list[bytes], indexes: list[int]) -> tuple[set[str], set[str]]:
    """(every fact id, the ``started`` fact ids) the bodies at ``indexes`` must produce."""
    facts = [facts_of(bodies[i]) for i in indexes]
    return {i for f in facts for i in f.values()}, {f[STARTED] for f in facts}


async def _all_delivered(
    receiver: VerifyingReceiver, record: Path, ids: set[str], started: set[str]
) -> None:
    await wait_for(lambda: ids <= receiver.delivered, f"{len(ids)} deliveries to the receiver")
    await wait_for(lambda: started <= _handled(record), f"{len(started)} bus handler runs")


async def test_crash_sigkill_mid_stream_loses_no_acked_event(
    tmp_path: Path, receiver: VerifyingReceiver, services: ServiceFactory
) -> None:
    db, record = tmp_path / "paybridge.db", tmp_path / "handled.db"
    cfg = write_config(
        tmp_path / "config.yaml",
        config_data(f"sqlite:///{db}", receiver.url, receiver.secret),
    )
    first = services(cfg, app=[str(record), "first", "--events", STARTED], name="first")
    await first.ready()
    bodies = _bodies(seed=6)

    def kill_at(n: int) -> None:
        if n == KILL_AT:
            first.kill()

    sent = await blast([first.url], bodies, connections=32, on_ack=kill_at)
    assert not first.alive()
    acked = sent.acked()
    assert KILL_AT <= len(acked) < len(bodies), "the kill must land mid-stream"

    # Acked means durable: every fact of every acked event is in the file of the dead process.
    ids, started = _expected(bodies, acked)
    stored = {str(r[0]) for r in _query(db, "SELECT id FROM events")}
    assert ids <= stored

    second = services(cfg, app=[str(record), "second", "--events", STARTED], port=first.port)
    await second.ready()
    await _all_delivered(receiver, record, ids, started)

    # The provider retries what was not acked; then everything is delivered.
    retried = await blast([second.url], [bodies[i] for i in sent.unacked()], connections=32)
    assert not retried.unacked()
    all_ids, all_started = _expected(bodies, list(range(len(bodies))))
    assert len(all_ids) == 3 * N_SUBS and len(all_started) == N_SUBS
    await _all_delivered(receiver, record, all_ids, all_started)
    # Each outcome is committed a moment after the receiver (or handler) saw the delivery.
    await wait_for(
        lambda: _query(db, "SELECT COUNT(*) FROM deliveries WHERE status != 'delivered'") == [(0,)],
        "every delivery outcome recorded",
    )

    # Exactly once in the store: one inbox row per provider event, one row per fact, one
    # delivery row per (fact, subscriber), all delivered.
    assert _query(db, "SELECT COUNT(*) FROM inbox") == [(2 * N_SUBS,)]
    assert {str(r[0]) for r in _query(db, "SELECT id FROM events")} == all_ids
    assert _query(db, "SELECT COUNT(*), COUNT(DISTINCT dedupe_key) FROM events") == [
        (3 * N_SUBS, 3 * N_SUBS)
    ]
    rows = _query(
        db,
        "SELECT subscriber_id, COUNT(*), COUNT(DISTINCT event_id), SUM(status = 'delivered')"
        " FROM deliveries GROUP BY subscriber_id ORDER BY subscriber_id",
    )
    assert rows == [("handler:grant", N_SUBS, N_SUBS, N_SUBS), ("we_recv", *(3 * N_SUBS,) * 3)]
    assert _handled(record) == all_started
    assert receiver.bad_signatures == 0
    assert set(receiver.arrivals) == all_ids
    assert all(receiver.bodies[i]["id"] == i for i in all_ids)
