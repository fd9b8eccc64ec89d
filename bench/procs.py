"""Child processes of the harness: started pinned to one core, awaited on their port, stopped
by pid (SIGTERM, then SIGKILL), with their memory read from ``/proc``."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "CPUS",
    "Proc",
    "child_env",
    "free_port",
    "pinning_note",
    "python_cmd",
    "rss_mb",
]

# Two cores or more: the server side runs on CPU 0, the load side (load generator, receivers)
# on CPU 1. With one core nothing is pinned.
_AFFINITY = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
CPUS: tuple[int | None, int | None] = (
    (_AFFINITY[0], _AFFINITY[1]) if len(_AFFINITY) >= 2 else (None, None)
)


_ROOT = Path(__file__).resolve().parents[1]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This environment with the repository on ``PYTHONPATH`` (children run in temp dirs)."""
    path = os.pathsep.join(p for p in (str(_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **(extra or {})}


def pinning_note() -> str:
    if CPUS[0] is None:
        return "not pinned (fewer than 2 usable cores)"
    return f"server side pinned to CPU {CPUS[0]}, load generator and receivers to CPU {CPUS[1]}"


def python_cmd(module: str, *args: str) -> list[str]:
    """``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_mb(pid: int) -> dict[str, float]:
    """Resident memory of ``pid`` now and at its peak (MB), from /proc; empty elsewhere."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out["rss_mb" if key == "VmRSS" else "peak_rss_mb"] = int(value.split()[0]) / 1024
    return out


class Proc:
    """One child process; stdout/stderr go to ``log``."""

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        log: Path,
        cpu: int | None,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.cmd = list(cmd)
        self.log = log

        def pin() -> None:
            if cpu is not None:
                os.sched_setaffinity(0, {cpu})

        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=child_env(env),
                preexec_fn=pin,  # the harness has no threads of its own
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_port(self, port: int, timeout_s: float = 30.0) -> None:
        """Wait until something listens on 127.0.0.1:``port``.

        Raises:
            RuntimeError: the process exited or the port stayed closed (log tail included).
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                break
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(self.cmd)} did not listen on {port}:\n{tail}")

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM, wait, SIGKILL if needed; returns the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode
