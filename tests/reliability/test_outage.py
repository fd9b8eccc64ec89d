"""Issue #6, outage: the receiver answers 500, then times out, then recovers. Every delivery
arrives with the same ``webhook-id`` on every attempt, and the attempts follow
``delivery.schedule_s`` (jitter 0): each retry starts no sooner than its scheduled delay after
the previous attempt finished, and not much later."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from tests.reliability.conftest import ServiceFactory
from tests.reliability.harness import (
    VerifyingReceiver,
    config_data,
    facts_of,
    post_one,
    subscription_pair,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow

SCHEDULE = [0.3, 0.6, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
TIMEOUT_S = 0.5
POLL_S = 0.05
SLACK_S = 1.5  # poll interval, scheduling and a loaded machine: generous on purpose
N_SUBS = 10


Row = tuple[int, float, float, str, int | None, str | None]


def _attempts(db: Path) -> dict[str, list[Row]]:
    """Attempts per event: (attempt, started_at, finished_at, outcome, status_code, error)."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute(
            "SELECT event_id, attempt, started_at, finished_at, outcome, status_code, error"
            " FROM attempts ORDER BY event_id, attempt"
        ).fetchall()
    finally:
        conn.close()
    out: dict[str, list[Row]] = {}
    for event_id, *rest in rows:
        out.setdefault(event_id, []).append((rest[0], rest[1], rest[2], rest[3], rest[4], rest[5]))
    return out


async def test_outage_500_then_timeouts_then_recovery_delivers_all_on_schedule(
    tmp_path: Path, receiver: VerifyingReceiver, services: ServiceFactory
) -> None:
    mode = {"now": "500"}

    async def respond(_wid: str, _n: int) -> int:
        if mode["now"] == "timeout":
            await asyncio.sleep(30)  # cancelled when paybridge gives up and disconnects
        return 500 if mode["now"] != "up" else 200

    receiver.respond = respond
    db = tmp_path / "paybridge.db"
    data = config_data(
        f"sqlite:///{db}",
        receiver.url,
        receiver.secret,
        delivery={"schedule_s": SCHEDULE, "timeout_s": TIMEOUT_S, "poll_interval_s": POLL_S},
    )
    svc = services(write_config(tmp_path / "config.yaml", data))
    await svc.ready()
    bodies = [subscription_pair(f"sub_out{i}")[0] for i in range(N_SUBS)]
    async with aiohttp.ClientSession() as session:
        statuses = await asyncio.gather(*(post_one(session, svc.url, b) for b in bodies))
    assert statuses == [200] * N_SUBS
    ids = {i for b in bodies for i in facts_of(b).values()}

    def each_arrived(n: int) -> bool:
        return all(len(receiver.arrivals.get(i, [])) >= n for i in ids)

    await wait_for(lambda: each_arrived(2), "two failed (500) attempts of every delivery")
    mode["now"] = "timeout"
    counts = {i: len(receiver.arrivals[i]) for i in ids}
    await wait_for(
        lambda: all(len(receiver.arrivals[i]) >= counts[i] + 2 for i in ids),
        "two timed-out attempts of every delivery",
    )
    mode["now"] = "up"
    await wait_for(lambda: ids <= receiver.delivered, "every delivery after recovery")
    # The receiver has answered 200; paybridge records that outcome a moment later.
    await wait_for(
        lambda: all(rows[-1][3] == "succeeded" for rows in _attempts(db).values()),
        "every successful attempt recorded",
    )

    attempts = _attempts(db)
    assert set(attempts) == ids
    for event_id, rows in attempts.items():
        outcomes = [(r[3], r[4], r[5]) for r in rows]
        assert outcomes[:2] == [("failed", 500, None)] * 2, event_id
        assert ("failed", None, "timeout") in outcomes, event_id
        assert outcomes[-1] == ("succeeded", 200, None), event_id
        assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
        assert len(receiver.arrivals[event_id]) == len(rows)  # one webhook-id for every try
        for prev, nxt in itertools.pairwise(rows):
            delay = SCHEDULE[prev[0] - 1]
            waited = nxt[1] - prev[2]  # from the end of one attempt to the start of the next
            assert delay - 0.01 <= waited <= delay + SLACK_S, (event_id, prev[0], waited)
    assert receiver.bad_signatures == 0
