"""Running paybridge as an operator does: a config file on disk, `paybridge serve` as a real
subprocess, other commands as real subprocesses against the same config (and store)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bridge.config import Config
from tests.conftest import ADMIN_KEY, STRIPE_SECRET

__all__ = ["Served", "cli", "free_port", "serve", "write_config"]

ROOT = Path(__file__).resolve().parents[1]
_ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(
    tmp_path: Path,
    cfg: Config,
    secrets: dict[str, str] | None = None,
    *,
    stripe_api_key: str | None = None,
    **server: Any,
) -> Path:
    """``cfg`` as a YAML file with its secrets written out (the model masks them):
    the Stripe secret (and API key), the admin key, and ``secrets`` by endpoint id."""
    data = cfg.model_dump(mode="json")
    data["sources"]["stripe"]["signing_secrets"] = [STRIPE_SECRET]
    data["sources"]["stripe"]["api_key"] = stripe_api_key
    data["admin"]["api_keys"] = [ADMIN_KEY]
    for ep in data["endpoints"]:
        if ep["id"] in (secrets or {}):
            ep["secret"] = (secrets or {})[ep["id"]]
    data["server"].update(server)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def cli(*args: str, cwd: Path, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    """``paybridge ARGS`` as a subprocess; never raises on a non-zero exit."""
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args],
        cwd=cwd,
        env=_ENV,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


@dataclass
class Served:
    """A running ``paybridge serve``; ``stderr`` is its log file."""

    port: int
    stderr: Path
    returncode: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.stderr.read_text()


@contextmanager
def serve(config: Path, port: int, *extra: str, start_s: float = 20) -> Iterator[Served]:
    """Start ``paybridge serve -c config --port port EXTRA``, wait (bounded) for it to listen,
    and stop it with SIGTERM afterwards (its exit status lands in ``returncode``)."""
    stderr = config.parent / f"serve-{port}.log"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bridge.cli",
                "serve",
                "-c",
                str(config),
                "--port",
                str(port),
                *extra,
            ],
            cwd=config.parent,
            env=_ENV,
            stderr=err,
        )
    served = Served(port, stderr)
    try:
        deadline = time.monotonic() + start_s
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"serve did not start:\n{served.log()}")
            time.sleep(0.05)
        yield served
    finally:
        proc.send_signal(signal.SIGTERM)
        served.returncode = proc.wait(20)
