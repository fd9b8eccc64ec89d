"""Reconcile against a local Stripe-compatible Events API that holds events the service never
received: the scheduled pass inside the service (checkpoint, period, one instance at a time,
pagination, a failing API) and the `paybridge reconcile` command's terminal progress."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import stripe
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient, AiohttpServer

from adapters.stripe_samples import sample_event
from bridge.config import Config
from bridge.reconcile import (
    FIRST_LOOKBACK_S,
    JOB,
    OVERLAP_S,
    STRIPE_EVENTS_KEPT_S,
    Checkpoint,
    Reconciler,
    pass_start,
    run_reconcile,
)
from bridge.service import Bridge
from bridge.store.sqlite import SqliteStore
from tests.conftest import make_config, post_stripe
from tests.operator import ROOT, write_config
from tests.receivers import ManualClock, wait_until
from tests.stripe_events_api import KEY, EventsApi

HOUR = 3600.0


def _events(n: int, now: float, *, spacing_s: float = 60) -> list[dict[str, Any]]:
    """``n`` distinct Stripe events, one every ``spacing_s`` back from ``now``."""
    out = []
    for i in range(n):
        ev = sample_event("customer.subscription.created")
        ev["created"] = int(now - i * spacing_s)
        out.append(ev)
    return out


@dataclass
class World:
    """A started service on the clock, and the Stripe-compatible API it reconciles from."""

    clock: ManualClock
    api: EventsApi
    bridge: Bridge
    client: TestClient[Any, Any]


WorldFactory = Callable[..., Awaitable[World]]


@pytest.fixture
def world(
    tmp_path: Path, aiohttp_client: AiohttpClient, aiohttp_server: AiohttpServer
) -> WorldFactory:
    """``await world(n_events, every_s=None, fail_from_call=None)``."""

    async def make(n: int, every_s: float | None = None, **api_args: Any) -> World:
        clock = ManualClock()
        api = EventsApi(_events(n, clock.now), **api_args)
        server = await aiohttp_server(api.app())
        base = str(server.make_url("")).rstrip("/")
        extra = f"sources:\n  stripe:\n    api_key: {KEY}\n    api_base: '{base}'\n"
        if every_s:
            extra += f"    reconcile_every_s: {every_s}\n"
        bridge = Bridge(make_config(tmp_path, extra), clock=clock)
        return World(clock, api, bridge, await aiohttp_client(bridge.web_app()))

    return make


def _reconciler(bridge: Bridge, owner: str = "instance-a", every_s: float = HOUR) -> Reconciler:
    stripe_cfg = bridge.config.sources.stripe
    assert stripe_cfg is not None
    cfg = stripe_cfg.model_copy(update={"reconcile_every_s": every_s})
    return Reconciler(
        bridge.store, cfg, lambda r: bridge.ingest("stripe", r), owner=owner, clock=bridge.clock
    )


# -- when and from where (pure) -------------------------------------------------------------------


def test_reconcile_pass_start_from_checkpoint_period_and_stripe_window() -> None:
    now = 1_750_000_000.0
    assert pass_start(None, now=now, every_s=HOUR) == now - FIRST_LOOKBACK_S
    recent = Checkpoint(through=now - 600, finished_at=now - 590)
    assert pass_start(recent, now=now, every_s=HOUR) is None  # the last pass is not an hour old
    assert pass_start(recent, now=now, every_s=300) == now - 600 - OVERLAP_S
    ancient = Checkpoint(through=now - 90 * 86400, finished_at=now - 90 * 86400)
    start = pass_start(ancient, now=now, every_s=HOUR)
    assert start is not None and now - STRIPE_EVENTS_KEPT_S < start < now - 29 * 86400


def test_reconcile_checkpoint_round_trip_and_garbage() -> None:
    cp = Checkpoint(through=12.5, finished_at=13.0)
    assert Checkpoint.loads(cp.dumps()) == cp
    for bad in (None, "", "{", "[]", '{"through": "x", "finished_at": 1}', '{"through": 1}'):
        assert Checkpoint.loads(bad) is None


# -- the scheduled pass -----------------------------------------------------------------------


async def test_reconcile_pass_pages_through_and_feeds_missed_events(world: WorldFactory) -> None:
    w = await world(230)
    clock, api, bridge, client = w.clock, w.api, w.bridge, w.client
    for known in api.events[:2]:  # the service got these two as webhooks
        assert (await post_stripe(client, known))[0] == 200

    report = await _reconciler(bridge).run_once()

    assert report is not None
    assert (report.listed, report.new, report.duplicates, report.failed) == (230, 228, 2, 0)
    assert [c.get("starting_after") for c in api.calls] == [
        None, api.events[99]["id"], api.events[199]["id"]
    ]  # fmt: skip
    assert {c["created[gte]"] for c in api.calls} == {str(int(clock.now - FIRST_LOOKBACK_S))}
    counts = await bridge.store.counts()
    assert counts["inbox"] == 230 and counts["events"] == 2 * 230  # created + started each
    lease = await bridge.store.acquire_job(JOB, owner="probe", now=clock.now, lease_s=1)
    assert lease is not None  # released after the pass
    cp = Checkpoint.loads(lease.checkpoint)
    assert cp is not None and cp.through == clock.now


async def test_reconcile_period_and_checkpoint_bound_the_next_pass(world: WorldFactory) -> None:
    w = await world(3)
    clock, api, bridge, _client = w.clock, w.api, w.bridge, w.client
    reconciler = _reconciler(bridge, every_s=HOUR)
    first = await reconciler.run_once()
    assert first is not None and first.new == 3
    started_at = clock.now

    clock.advance(HOUR / 2)
    assert await reconciler.run_once() is None  # not due: nothing asked of Stripe
    assert len(api.calls) == 1
    clock.advance(HOUR)
    missed = _events(1, clock.now - 10)  # created after the first pass
    api.events += missed
    second = await reconciler.run_once()
    # the new one, and the first pass's last 5 minutes listed again (the overlap): duplicates
    assert second is not None and (second.new, second.duplicates) == (1, 3)
    assert api.calls[-1]["created[gte]"] == str(int(started_at - OVERLAP_S))


async def test_reconcile_one_instance_at_a_time(world: WorldFactory) -> None:
    w = await world(2)
    clock, api, bridge, _client = w.clock, w.api, w.bridge, w.client
    held = await bridge.store.acquire_job(JOB, owner="instance-b", now=clock.now, lease_s=120)
    assert held is not None

    assert await _reconciler(bridge, owner="instance-a").run_once() is None
    assert api.calls == []  # the other instance's pass: this one asked Stripe nothing
    clock.advance(121)  # instance-b died: its lease runs out
    taken = await _reconciler(bridge, owner="instance-a").run_once()
    assert taken is not None and taken.new == 2


async def test_reconcile_failing_api_keeps_the_checkpoint(world: WorldFactory) -> None:
    w = await world(150, fail_from_call=2)  # the second page fails
    clock, api, bridge = w.clock, w.api, w.bridge
    reconciler = _reconciler(bridge)

    with pytest.raises(stripe.APIError):
        await reconciler.run_once()

    assert (await bridge.store.counts())["inbox"] == 100  # the first page went in
    lease = await bridge.store.acquire_job(JOB, owner="probe", now=clock.now, lease_s=1)
    assert lease is not None and lease.checkpoint is None  # released, nothing checkpointed
    await bridge.store.release_job(JOB, owner="probe")
    api.fail_from_call = None
    again = await reconciler.run_once()  # the next period lists the same span again
    assert again is not None and (again.new, again.duplicates) == (50, 100)


async def test_reconcile_runs_inside_the_service_on_its_period(world: WorldFactory) -> None:
    """With reconcile_every_s set, the started service lists Stripe on its own and the
    missed event is stored, without any command."""
    w = await world(1, every_s=3600)
    api, bridge = w.api, w.bridge

    async def stored() -> bool:
        return (await bridge.store.counts())["inbox"] == 1

    await wait_until(stored, "the missed event stored by the scheduled pass")
    assert bridge.reconciler is not None and len(api.calls) == 1


# -- the command ------------------------------------------------------------------------------


def _read_all(fd: int) -> str:
    """Everything written to the pty until the child closed it (EIO on Linux)."""
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


async def test_reconcile_cli_shows_progress_on_a_terminal_and_a_summary(
    world: WorldFactory, tmp_path: Path
) -> None:
    w = await world(120)
    api, bridge, client = w.api, w.bridge, w.client
    await post_stripe(client, api.events[5])
    config = write_config(tmp_path, bridge.config, stripe_api_key=KEY)
    to = str(client.make_url("/webhooks/stripe"))
    master, slave = os.openpty()  # stderr is a terminal, as when an operator runs it
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge.cli", "reconcile", "-c", str(config), "--since", "1d",
            "--to", to, stdout=asyncio.subprocess.PIPE, stderr=slave, cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    finally:
        os.close(slave)  # the child's copy stays open until it exits
    try:
        reading = asyncio.ensure_future(asyncio.to_thread(_read_all, master))
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        terminal = await asyncio.wait_for(reading, 10)
    finally:
        os.close(master)
    assert proc.returncode == 0, terminal
    assert out.decode() == "reconciled: 120 listed, 119 new, 1 already stored, 0 failed\n"
    assert terminal.startswith("\rreconcile: ") and terminal.endswith(
        "\rreconcile: 120 listed, 119 new, 1 already stored, 0 failed\r\n"
    )  # the terminal turns the final newline into CR LF
    assert (await bridge.store.counts())["inbox"] == 120


async def test_reconcile_lease_taken_over_mid_pass_stops_it(world: WorldFactory) -> None:
    """This instance stalls past its lease in mid-pass and another takes the job: at its next
    renewal it stops instead of running beside the other, and checkpoints nothing."""
    w = await world(150)
    bridge, clock = w.bridge, w.clock
    fed = 0

    async def ingest_then_stall(request: Any) -> Any:
        nonlocal fed
        fed += 1
        if fed == 50:
            clock.advance(1000)  # longer than the lease
            taken = await bridge.store.acquire_job(JOB, owner="other", now=clock.now, lease_s=600)
            assert taken is not None
        return await bridge.ingest("stripe", request)

    stripe_cfg = bridge.config.sources.stripe
    assert stripe_cfg is not None
    reconciler = Reconciler(
        bridge.store, stripe_cfg, ingest_then_stall, owner="instance-a", clock=clock
    )
    with pytest.raises(RuntimeError, match="lease lost"):
        await reconciler.run_once()
    assert fed == 100
    held = await bridge.store.acquire_job(JOB, owner="other", now=clock.now, lease_s=600)
    assert held is not None and held.checkpoint is None


async def test_reconcile_refused_event_is_counted_and_the_pass_goes_on(
    world: WorldFactory,
) -> None:
    w = await world(3)
    del w.api.events[1]["type"]  # an event the Stripe adapter refuses
    report = await _reconciler(w.bridge).run_once()
    assert report is not None and (report.listed, report.new, report.failed) == (3, 2, 1)


async def test_reconcile_loop_logs_a_failing_api_and_survives(
    world: WorldFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.reconcile")
    w = await world(1, every_s=3600, fail_from_call=1)

    async def failed() -> bool:
        return any(r.getMessage().startswith("reconcile_failed") for r in caplog.records)

    await wait_until(failed, "a reconcile_failed line")
    line = next(r for r in caplog.records if r.getMessage().startswith("reconcile_failed"))
    assert line.levelno == logging.WARNING and "APIError" in line.getMessage()
    assert KEY not in line.getMessage()
    await w.bridge.stop()


async def test_reconcile_on_without_api_key_warns_and_lists_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = make_config(tmp_path).sources.stripe
    assert cfg is not None and cfg.api_key is None
    store = SqliteStore(str(tmp_path / "paybridge.db"))
    calls: list[Any] = []

    async def ingest(request: Any) -> Any:
        calls.append(request)

    on = cfg.model_copy(update={"reconcile_every_s": 60.0})
    reconciler = Reconciler(store, on, ingest, owner="a")
    await reconciler.start()
    await reconciler.stop()
    assert "api_key is not" in caplog.text and calls == []


def _run_cli(config: Config, since: str, to: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()  # not terminals: no progress, only the summary
    code = run_reconcile(config, since=since, to=to, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


async def test_reconcile_command_summary_and_failures(world: WorldFactory, tmp_path: Path) -> None:
    w = await world(3)
    del w.api.events[0]["type"]  # the service answers 400: counted as failed, exit 1
    to = str(w.client.make_url("/webhooks/stripe"))
    code, out, err = await asyncio.to_thread(_run_cli, w.bridge.config, "1d", to)
    assert (code, err) == (1, "")
    assert out == "reconciled: 3 listed, 2 new, 0 already stored, 1 failed\n"

    w.api.fail_from_call = len(w.api.calls) + 1
    code, out, err = await asyncio.to_thread(_run_cli, w.bridge.config, "1d", to)
    assert code == 1 and out == "" and err.startswith("reconcile: Stripe API call failed: APIError")
    code, _, err = await asyncio.to_thread(_run_cli, w.bridge.config, "a while", to)
    assert code == 1 and "duration" in err
    no_key = make_config(tmp_path)  # the test config: no api_key
    code, _, err = await asyncio.to_thread(_run_cli, no_key, "1d", to)
    assert code == 1 and "needs sources.stripe.api_key" in err
