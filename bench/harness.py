"""Process-level building blocks of the workloads: the service, baselines, receivers and the
load generator as real processes, plus CPU accounting from ``/proc``."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.config import RECEIVER_SECRET, write_config
from bench.procs import CPUS, Proc, child_env, free_port, python_cmd

__all__ = [
    "Ctx",
    "Server",
    "baseline",
    "cpu_seconds",
    "get_json",
    "paybridge",
    "post_json",
    "receivers",
    "run_loadgen",
    "run_pinned",
    "settle_disk",
]


@dataclass
class Ctx:
    """Settings of one harness run."""

    tmp: Path
    full: bool = False
    runs: int = 3
    ingest_count: int = 10_000
    fanout_events: int = 300
    e2e_events: int = 2_000
    scale_n: int = 50_000
    postgres_url: str | None = None
    notes: list[str] = field(default_factory=list)

    def dir(self, name: str) -> Path:
        d = self.tmp / name
        d.mkdir(parents=True, exist_ok=True)
        return d


@dataclass
class Server:
    """A started server process and its URL base."""

    proc: Proc
    port: int

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0


def run_pinned(cmd: list[str], cpu: int | None, timeout_s: float) -> str:
    """Run ``cmd`` to completion pinned to ``cpu``; its stdout.

    Raises:
        RuntimeError: non-zero exit (stderr included).
    """
    prefix = ["taskset", "-c", str(cpu)] if cpu is not None and shutil.which("taskset") else []
    done = subprocess.run(
        prefix + cmd,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env=child_env(),
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} failed: {done.stderr[-2000:]}")
    return done.stdout


def run_loadgen(url: str, server_pid: int | None = None, **spec: Any) -> dict[str, Any]:
    """One load-generator process against ``url`` (see :mod:`bench.loadgen`), after
    :func:`settle_disk`; adds the speed of the server core just before the run
    (:mod:`bench.calibrate`) and the server's CPU utilisation over the run when ``server_pid``
    is given."""
    spec = {"url": url, "concurrency": 64, "max_s": 120, **spec}
    settle_disk()
    speed = float(run_pinned(python_cmd("bench.calibrate"), CPUS[0], 60))
    before = cpu_seconds(server_pid) if server_pid else 0.0
    t0 = time.monotonic()
    out = run_pinned(python_cmd("bench.loadgen", orjson.dumps(spec).decode()), CPUS[1], 300)
    result: dict[str, Any] = orjson.loads(out)
    result["server_core_speed"] = speed  # bench.calibrate, just before the run
    if server_pid:
        # Includes the load generator's start-up (about 0.3 s): an under-estimate.
        used = cpu_seconds(server_pid) - before
        result["server_cpu"] = round(used / (time.monotonic() - t0), 3)
    return result


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return orjson.loads(resp.read())


def post_json(url: str) -> None:
    req = urllib.request.Request(url, data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()


def settle_disk() -> None:
    """Write back every dirty page before a measurement starts (``os.sync``), so a workload
    does not pay for the previous one's deferred writeback: with ext4's ordered data mode the
    first fsync after a workload that wrote gigabytes (or the prefill, written without fsync)
    waits for all of it."""
    os.sync()


def _paybridge_cmd(config: Path, port: int) -> list[str]:
    script = Path(sys.executable).with_name("paybridge")
    head = [str(script)] if script.exists() else python_cmd("bridge.cli")
    return [*head, "serve", "-c", str(config), "--port", str(port)]


@contextlib.contextmanager
def paybridge(
    ctx: Ctx,
    name: str,
    store_url: str,
    receiver_ports: list[int] | None = None,
    bus_app: bool = False,
    stripe: dict[str, str] | None = None,
) -> Iterator[Server]:
    """``paybridge serve`` (or :mod:`bench.busapp`) on a generated config, on the server core."""
    d = ctx.dir(name)
    port = free_port()
    config = write_config(
        d, store_url=store_url, port=port, receiver_ports=receiver_ports, stripe=stripe
    )
    cmd = (
        python_cmd("bench.busapp", str(config), str(port))
        if bus_app
        else _paybridge_cmd(config, port)
    )
    proc = Proc(cmd, log=d / "server.log", cpu=CPUS[0], cwd=d)
    try:
        proc.wait_port(port)
        yield Server(proc, port)
    finally:
        proc.stop()


@contextlib.contextmanager
def baseline(ctx: Ctx, kind: str) -> Iterator[Server]:
    """Baseline server ``kind`` (``a``/``b``) from :mod:`bench.baselines` on the server core."""
    d = ctx.dir(f"baseline_{kind}")
    port = free_port()
    args = [kind, str(port)] + ([str(d / "baseline.db")] if kind == "b" else [])
    proc = Proc(python_cmd("bench.baselines", *args), log=d / "server.log", cpu=CPUS[0])
    try:
        proc.wait_port(port)
        yield Server(proc, port)
    finally:
        proc.stop()


@contextlib.contextmanager
def receivers(ctx: Ctx, n: int, record: bool = False) -> Iterator[list[int]]:
    """``n`` receiver ports in one process (:mod:`bench.receivers`) on the load core.

    Raises:
        RuntimeError: the receivers did not come up within 30 s.
    """
    d = ctx.dir("receivers")
    port_file = d / f"ports-{time.monotonic_ns()}.json"
    args = [str(port_file), str(n), RECEIVER_SECRET] + (["--record"] if record else [])
    proc = Proc(python_cmd("bench.receivers", *args), log=d / "receivers.log", cpu=CPUS[1])
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if time.monotonic() > deadline or proc.popen.poll() is not None:
                raise RuntimeError(f"receivers did not start: {proc.log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield [int(p) for p in orjson.loads(port_file.read_bytes())]
    finally:
        proc.stop()
