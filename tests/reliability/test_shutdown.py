"""Issue #6, graceful shutdown of ``paybridge serve``: SIGTERM stops accepting connections,
gives in-flight deliveries ``server.shutdown_timeout_s`` to finish, releases the rest so a
restart retries them at once, exits 0 within the bound and logs one summary line."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest

from tests.reliability.conftest import ServiceFactory
from tests.reliability.harness import (
    Service,
    VerifyingReceiver,
    blast,
    config_data,
    facts_of,
    post_one,
    subscription_pair,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow

STARTED = "customer.subscription.started"


def _refuses(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def _delivery(db: Path, event_id: str) -> tuple[str, list[tuple[str, str | None]]]:
    conn = sqlite3.connect(db)
    try:
        (status,) = conn.execute(
            "SELECT status FROM deliveries WHERE event_id = ?", (event_id,)
        ).fetchone()
        outcomes = [
            (str(r[0]), r[1])
            for r in conn.execute(
                "SELECT outcome, error FROM attempts WHERE event_id = ? ORDER BY id", (event_id,)
            )
        ]
    finally:
        conn.close()
    return str(status), outcomes


async def _start_with_one_delivery(
    tmp_path: Path, receiver: VerifyingReceiver, services: ServiceFactory, shutdown_s: float
) -> tuple[Service, Path, str]:
    db = tmp_path / "paybridge.db"
    data = config_data(
        f"sqlite:///{db}",
        receiver.url,
        receiver.secret,
        events=[STARTED],
        delivery={"timeout_s": 30},
        server={"shutdown_timeout_s": shutdown_s},
    )
    svc = services(write_config(tmp_path / "config.yaml", data))
    await svc.ready()
    body = subscription_pair("sub_term1")[0]
    async with aiohttp.ClientSession() as session:
        assert await post_one(session, svc.url, body) == 200
    event_id = facts_of(body)[STARTED]
    await wait_for(lambda: event_id in receiver.arrivals, "the delivery in flight")
    return svc, db, event_id


def _stopped_lines(svc: Service) -> list[str]:
    return [line for line in svc.log_text().splitlines() if "paybridge stopped" in line]


async def test_shutdown_sigterm_releases_a_stuck_delivery_and_restart_retries_it(
    tmp_path: Path, receiver: VerifyingReceiver, services: ServiceFactory
) -> None:
    gate = asyncio.Event()

    async def held(_wid: str, _n: int) -> int:
        await gate.wait()
        return 200

    receiver.respond = held
    shutdown_s = 2.0
    svc, db, event_id = await _start_with_one_delivery(tmp_path, receiver, services, shutdown_s)
    svc.terminate()
    deadline = time.monotonic() + shutdown_s
    while not _refuses(svc.port):  # stops accepting while the delivery is still in flight
        assert time.monotonic() < deadline, "still accepting connections after SIGTERM"
        await asyncio.sleep(0.02)
    assert svc.alive(), "exited before the in-flight delivery had its shutdown_timeout_s"
    code = await asyncio.to_thread(svc.wait, 2 * shutdown_s + 10)
    assert code == 0
    assert len(_stopped_lines(svc)) == 1
    assert "1 attempts abandoned in flight" in _stopped_lines(svc)[0]
    # Recorded as a failed attempt, due again at once (no lease left to wait out).
    abandoned = ("failed", "abandoned: paybridge stopped mid-attempt")
    assert _delivery(db, event_id) == ("pending", [abandoned])

    gate.set()
    again = services(svc.config, port=svc.port, name="again")
    await again.ready()
    await wait_for(lambda: event_id in receiver.delivered, "the released delivery, retried")
    assert len(receiver.arrivals[event_id]) == 2
    await wait_for(lambda: _delivery(db, event_id)[0] == "delivered", "delivered in the store")
    assert _delivery(db, event_id)[1] == [abandoned, ("succeeded", None)]
    again.terminate()
    assert await asyncio.to_thread(again.wait, 20) == 0


async def test_shutdown_sigterm_lets_a_slow_delivery_finish(
    tmp_path: Path, receiver: VerifyingReceiver, services: ServiceFactory
) -> None:
    async def slow(_wid: str, _n: int) -> int:
        await asyncio.sleep(1.0)
        return 200

    receiver.respond = slow
    svc, db, event_id = await _start_with_one_delivery(tmp_path, receiver, services, 10.0)
    svc.terminate()
    assert await asyncio.to_thread(svc.wait, 30) == 0
    assert event_id in receiver.delivered
    assert _delivery(db, event_id) == ("delivered", [("succeeded", None)])
    lines = _stopped_lines(svc)
    assert len(lines) == 1 and "0 attempts abandoned in flight" in lines[0]


def _leased_pending(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        (n,) = conn.execute(
            "SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND lease_owner IS NOT NULL"
        ).fetchone()
    finally:
        conn.close()
    return int(n)


async def test_shutdown_sigterm_mid_stream_acks_only_stored_events_and_leaks_no_lease(
    tmp_path: Path, receiver: VerifyingReceiver, services: ServiceFactory
) -> None:
    """SIGTERM while 1000 events stream in over 32 connections and deliveries run: exit 0
    within the bound, every acked event stored, and no pending delivery is left leased to the
    stopped process (a restart would otherwise wait the lease out)."""

    async def slowish(_wid: str, n: int) -> int:
        await asyncio.sleep(0.05)
        return 500 if n == 0 else 200  # first attempts fail: retries are claimed by the loop

    receiver.respond = slowish
    db = tmp_path / "paybridge.db"
    shutdown_s = 3.0
    data = config_data(
        f"sqlite:///{db}",
        receiver.url,
        receiver.secret,
        delivery={"timeout_s": 30},
        server={"shutdown_timeout_s": shutdown_s},
    )
    svc = services(write_config(tmp_path / "config.yaml", data))
    await svc.ready()
    bodies = [b for i in range(500) for b in subscription_pair(f"sub_midterm{i:04d}")]

    def term_at(n: int) -> None:
        if n == 300:
            svc.terminate()

    sent = await blast([svc.url], bodies, connections=32, on_ack=term_at)
    assert await asyncio.to_thread(svc.wait, 2 * shutdown_s + 10) == 0
    acked = sent.acked()
    assert 300 <= len(acked) < len(bodies)
    ids = {i for n in acked for i in facts_of(bodies[n]).values()}
    conn = sqlite3.connect(db)
    try:
        stored = {str(r[0]) for r in conn.execute("SELECT id FROM events")}
    finally:
        conn.close()
    assert ids <= stored
    assert len(_stopped_lines(svc)) == 1
    assert _leased_pending(db) == 0, _stopped_lines(svc)
