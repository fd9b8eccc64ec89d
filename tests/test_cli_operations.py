"""The weekly operator jobs against a running `paybridge serve` (a real subprocess), the
commands run on the same config and store, a real local receiver: list dead deliveries after
a receiver outage, count and recover them, and disable an endpoint while the service runs.

The commands run in this process (``bridge.cli.main`` on a thread) to keep the test short; the
subprocess tests in tests/test_logs.py and tests/test_cli.py cover the console script itself."""

from __future__ import annotations

import asyncio
import contextlib
import io
from pathlib import Path
from typing import Any

import orjson

from bridge.cli import main
from tests.conftest import make_config
from tests.operator import Served, free_port, serve, write_config
from tests.receivers import Receiver, always, ok, running, wait_until

SECRET = "whsec_ZGV2LWJpbGxpbmctc2VjcmV0LWNoYW5nZS1tZQ=="
STARTED = "customer.subscription.started"


def _config(tmp_path: Path, *receivers: Receiver) -> Path:
    endpoints = "".join(
        f"  - id: we_ops{i}\n    url: {r.url()}\n    enabled_events: [{STARTED}]\n"
        f"    secret: {SECRET}\n"
        for i, r in enumerate(receivers)
    )
    cfg = make_config(tmp_path, "endpoints:\n" + endpoints)
    return write_config(tmp_path, cfg, {f"we_ops{i}": SECRET for i in range(len(receivers))})


def _main(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


async def _run(tmp_path: Path, config: Path, *args: str) -> tuple[int, str, str]:
    """``paybridge ARGS -c config``; (exit status, stdout, stderr)."""
    return await asyncio.to_thread(_main, *args, "-c", str(config))


async def _json(tmp_path: Path, config: Path, *args: str) -> Any:
    code, out, err = await _run(tmp_path, config, *args, "--json")
    assert code == 0, err
    return orjson.loads(out)


async def _trigger(tmp_path: Path, config: Path, served: Served) -> None:
    to = f"{served.url}/webhooks/stripe"
    code, _, err = await _run(
        tmp_path, config, "trigger", "customer.subscription.created", "--to", to
    )
    assert code == 0, err


async def _until(check: Any, what: str) -> Any:
    """Poll the async ``check`` (bounded) until it answers something truthy; that answer."""
    found: list[Any] = []

    async def answered() -> bool:
        found[:] = [await check()]
        return bool(found[0])

    await wait_until(answered, what)
    return found[0]


async def test_cli_recover_after_a_receiver_outage(tmp_path: Path) -> None:
    async with running(always(503, "maintenance")) as (rcv,):
        config = _config(tmp_path, rcv)
        with serve(config, free_port()) as served:
            for _ in range(2):
                await _trigger(tmp_path, config, served)

            async def two_dead() -> Any:
                dead = await _json(tmp_path, config, "deliveries", "list", "--dead")
                return dead if len(dead) == 2 else None

            dead = await _until(two_dead, "two dead deliveries")
            assert {d["endpoint_id"] for d in dead} == {"we_ops0"}
            assert all(d["last_status_code"] == 503 and d["attempts"] == 4 for d in dead)
            assert all(d["event_type"] == STARTED for d in dead)
            code, out, _ = await _run(tmp_path, config, "deliveries", "list", "--dead")
            assert code == 0 and out.count("dead") == 2 and "503" in out

            code, out, _ = await _run(
                tmp_path, config, "recover", "--endpoint", "we_ops0", "--since", "1h", "--dry-run"
            )
            assert code == 0 and "2 failed since" in out and "nothing changed" in out
            rcv.script = ok()
            before = len(rcv.requests)
            done = await _json(
                tmp_path, config, "recover", "--endpoint", "we_ops0", "--since", "1h"
            )
            assert (done["dead"], done["count"], done["dry_run"]) == (2, 2, False)
            await rcv.wait_count(before + 2)

            async def delivered() -> Any:
                rows = await _json(tmp_path, config, "deliveries", "list", "--endpoint", "we_ops0")
                return [d for d in rows if d["status"] == "delivered"]

            assert len(await _until(delivered, "the resent deliveries delivered")) == 2
            again = await _json(
                tmp_path, config, "recover", "--endpoint", "we_ops0", "--since", "1h", "--dry-run"
            )
            assert again["count"] == 0
            code, _, err = await _run(
                tmp_path, config, "recover", "--endpoint", "we_nope", "--since", "1h"
            )
            assert code == 1 and "not_found" in err
            code, _, err = await _run(
                tmp_path, config, "recover", "--endpoint", "we_ops0", "--since", "soon"
            )
            assert code == 1 and "since" in err
    assert served.returncode == 0


async def test_cli_endpoint_disabled_while_serving_gets_nothing_more(tmp_path: Path) -> None:
    """`paybridge endpoints add/disable` beside a running service: it sees the change (the
    receiver of a disabled endpoint gets nothing more, the other one gets every event)."""
    async with running(ok(), ok()) as (kept, stopped):
        config = _config(tmp_path, kept)
        with serve(config, free_port()) as served:
            added = await _json(
                tmp_path, config, "endpoints", "add", "--url", stopped.url(), "--events", STARTED
            )
            await _trigger(tmp_path, config, served)
            await kept.wait_count(1)
            await stopped.wait_count(1)
            disabled = await _json(tmp_path, config, "endpoints", "disable", added["id"])
            assert disabled["status"] == "disabled"
            await _trigger(tmp_path, config, served)
            await _trigger(tmp_path, config, served)
            await kept.wait_count(3)
            rows = await _json(tmp_path, config, "deliveries", "list", "--endpoint", added["id"])
            assert len(rows) == 1 and rows[0]["status"] == "delivered"
    assert len(stopped.requests) == 1
