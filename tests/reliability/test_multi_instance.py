"""Issue #5: several paybridge instances on one PostgreSQL database.

Two ``paybridge serve`` processes with the same config take events in alternation and the same
provider event at the same moment: every fact is stored once, every delivery is made and none
by both instances. One instance is SIGKILLed with deliveries in flight: the other takes them
over once the lease expires. Two app processes with a bus handler of the same name share the
handler's work: each event runs once per handler name across the cluster."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.conftest import ADMIN_KEY, admin_headers, stripe_headers
from tests.reliability.conftest import ServiceFactory
from tests.reliability.harness import (
    WAIT_S,
    VerifyingReceiver,
    blast,
    config_data,
    facts_of,
    subscription_pair,
    wait_for,
    write_config,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

STARTED = "customer.subscription.started"


def _fast_lease_config(path: Path, pg_url: str, receiver: VerifyingReceiver) -> Path:
    """The lease is max(store.lease_s, delivery.timeout_s + 5, bus.handler_timeout_s + 5): 6 s."""
    data = config_data(
        pg_url,
        receiver.url,
        receiver.secret,
        store={"lease_s": 1.0},
        delivery={"timeout_s": 1.0},
        handler_timeout_s=1.0,
    )
    return write_config(path / "config.yaml", data)


def _pairs(prefix: str, n: int) -> list[bytes]:
    return [b for i in range(n) for b in subscription_pair(f"sub_{prefix}{i:04d}")]


def _ids(bodies: list[bytes]) -> set[str]:
    return {i for b in bodies for i in facts_of(b).values()}


async def _post_json(session: aiohttp.ClientSession, url: str, body: bytes) -> dict[str, Any]:
    async with session.post(
        url + "/webhooks/stripe", data=body, headers=stripe_headers(body)
    ) as resp:
        assert resp.status == 200, await resp.text()
        answer: dict[str, Any] = await resp.json()
        return answer


async def _fetch(url: str, sql: str) -> list[tuple[Any, ...]]:
    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def _outcomes_recorded(pg_url: str, sql: str, want: list[Any]) -> None:
    """Wait (bounded) until ``sql`` answers ``want``: a delivery's outcome is committed a
    moment after the receiver or the handler saw it."""
    deadline = time.monotonic() + WAIT_S
    while (got := await _fetch(pg_url, sql)) != want:
        assert time.monotonic() < deadline, (sql, got, want)
        await asyncio.sleep(0.05)


async def _assert_once_everywhere(pg_url: str, ids: set[str], subscribers: int) -> None:
    """One row per fact, one delivery per (fact, subscriber), all delivered, none twice."""
    await _outcomes_recorded(
        pg_url, "SELECT COUNT(*) FROM deliveries WHERE status != 'delivered'", [(0,)]
    )
    assert {r[0] for r in await _fetch(pg_url, "SELECT id FROM events")} == ids
    assert await _fetch(pg_url, "SELECT COUNT(*), COUNT(DISTINCT dedupe_key) FROM events") == [
        (len(ids), len(ids))
    ]
    per_pair = await _fetch(
        pg_url,
        "SELECT COUNT(*), COUNT(DISTINCT (event_id, subscriber_id)),"
        " COUNT(*) FILTER (WHERE status = 'delivered') FROM deliveries",
    )
    assert per_pair == [(len(ids) * subscribers,) * 3]
    twice = await _fetch(
        pg_url,
        "SELECT delivery_id FROM attempts WHERE outcome = 'succeeded'"
        " GROUP BY delivery_id HAVING COUNT(*) > 1",
    )
    assert twice == []


async def test_multi_instance_alternating_and_simultaneous_duplicates_store_and_deliver_once(
    tmp_path: Path, receiver: VerifyingReceiver, services: ServiceFactory, pg_url: str
) -> None:
    cfg = _fast_lease_config(tmp_path, pg_url, receiver)
    a, b = services(cfg, name="a"), services(cfg, name="b")
    await a.ready()
    await b.ready()

    alternating = _pairs("alt", 100)  # created → a, updated → b: the `started` fact races
    sent = await blast([a.url, b.url], alternating, connections=16)
    assert not sent.unacked()

    same_moment = _pairs("dup", 15)  # each provider event posted to both at once
    async with aiohttp.ClientSession() as session:
        answers = await asyncio.gather(
            *(_post_json(session, url, body) for body in same_moment for url in (a.url, b.url))
        )
    firsts = [ans for ans in answers if not ans["duplicate"]]
    assert len(firsts) == len(same_moment)  # exactly one instance stored each provider event

    ids = _ids(alternating + same_moment)
    await wait_for(lambda: ids <= receiver.delivered, f"{len(ids)} deliveries")
    await _assert_once_everywhere(pg_url, ids, subscribers=1)
    assert receiver.bad_signatures == 0


async def test_multi_instance_sigkill_mid_delivery_other_instance_takes_over_after_lease(
    tmp_path: Path, receiver: VerifyingReceiver, services: ServiceFactory, pg_url: str
) -> None:
    gate = asyncio.Event()

    async def slow(_wid: str, _n: int) -> int:
        await gate.wait()
        return 200

    receiver.respond = slow
    cfg = _fast_lease_config(tmp_path, pg_url, receiver)
    a, b = services(cfg, name="a"), services(cfg, name="b")
    await a.ready()
    await b.ready()
    bodies = [subscription_pair(f"sub_kill{i:03d}")[0] for i in range(20)]
    sent = await blast([a.url], bodies, connections=8)  # a holds every delivery's lease
    assert not sent.unacked()
    ids = _ids(bodies)
    await wait_for(lambda: len(receiver.arrivals) >= 8, "deliveries in flight from a")
    a.kill()
    gate.set()
    await wait_for(lambda: ids <= receiver.delivered, "b delivering what a had leased")
    await _assert_once_everywhere(pg_url, ids, subscribers=1)
    # a's attempts in flight at the kill were never finished; b made those deliveries anyway.
    orphans = await _fetch(
        pg_url,
        "SELECT a.delivery_id FROM attempts a JOIN deliveries d ON d.id = a.delivery_id"
        " WHERE a.outcome = 'pending' AND d.status = 'delivered'",
    )
    assert orphans
    assert b.alive()


def _handled(record: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(record)
    try:
        return [(str(r[0]), str(r[1])) for r in conn.execute("SELECT event_id, label FROM handled")]
    finally:
        conn.close()


async def test_multi_instance_bus_handler_of_one_name_runs_once_per_event_across_processes(
    tmp_path: Path, receiver: VerifyingReceiver, services: ServiceFactory, pg_url: str
) -> None:
    record = tmp_path / "handled.db"
    cfg = write_config(tmp_path / "config.yaml", config_data(pg_url, receiver.url, receiver.secret))
    a = services(cfg, app=[str(record), "a"], name="a")
    b = services(cfg, app=[str(record), "b"], name="b")
    await a.ready()
    await b.ready()
    bodies = _pairs("bus", 60)
    assert not (await blast([a.url, b.url], bodies, connections=16)).unacked()
    started = {facts_of(x)[STARTED] for x in bodies}
    ids = _ids(bodies)
    await wait_for(lambda: {e for e, _ in _handled(record)} >= started, "every started handled")
    await wait_for(lambda: ids <= receiver.delivered, "every delivery to the endpoint")
    handled = _handled(record)
    assert Counter(e for e, _ in handled) == Counter(dict.fromkeys(started, 1))
    assert {label for _, label in handled} == {"a", "b"}  # the work is shared
    await _outcomes_recorded(
        pg_url,
        "SELECT COUNT(*) FILTER (WHERE status = 'delivered'), COUNT(*) FROM deliveries"
        " WHERE subscriber_id = 'handler:grant'",
        [(len(started), len(started))],
    )


async def test_multi_instance_endpoint_changed_on_one_instance_is_used_by_the_other(
    tmp_path: Path, receiver: VerifyingReceiver, services: ServiceFactory, pg_url: str
) -> None:
    """An endpoint's URL changed through instance a's admin API: instance b's own deliveries
    follow the change (b must not keep a stale copy of the endpoint)."""
    moved = await VerifyingReceiver(receiver.secret).start()
    try:
        data = config_data(pg_url, receiver.url, receiver.secret)
        data["admin"] = {"api_keys": [ADMIN_KEY]}
        cfg = write_config(tmp_path / "config.yaml", data)
        a, b = services(cfg, name="a"), services(cfg, name="b")
        await a.ready()
        await b.ready()
        async with aiohttp.ClientSession(headers=admin_headers()) as session:
            async with session.post(
                a.url + "/api/webhook-endpoints",
                json={"url": receiver.url, "enabled_events": [STARTED], "secret": receiver.secret},
            ) as resp:
                assert resp.status in (200, 201), await resp.text()
                endpoint = (await resp.json())["id"]
            first = subscription_pair("sub_move0")[0]
            await _post_json(session, b.url, first)  # b now knows the endpoint
            await wait_for(lambda: facts_of(first)[STARTED] in receiver.delivered, "first")
            async with session.put(
                f"{a.url}/api/webhook-endpoints/{endpoint}", json={"url": moved.url}
            ) as resp:
                assert resp.status == 200, await resp.text()
            n = 0

            async def posted_until_moved() -> None:
                nonlocal n
                while not moved.delivered:
                    n += 1
                    await _post_json(session, b.url, subscription_pair(f"sub_move{n}")[0])
                    await asyncio.sleep(0.2)

            await asyncio.wait_for(posted_until_moved(), timeout=20)
        assert moved.bad_signatures == 0
    finally:
        await moved.close()
