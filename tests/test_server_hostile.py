"""A real ``paybridge serve`` process with the default ``server:`` limits, attacked as issue #14
found the former hand-written ingress attackable: pipelined floods, oversize heads whatever the
segmentation, bare LF, thousands of idle connections.

Memory and CPU are the server process's own (``/proc/PID``), always compared with a baseline
measured in the same test; bounds are loose (the former ingress missed them by 10-100x).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import yaml

from tests.conftest import STRIPE_SECRET
from tests.rawhttp import (
    connect,
    exchange,
    read_response,
    request,
    send_in_pieces,
    signed_event,
    wait_for_listener,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
_EMPTY_POST = b"POST /webhooks/stripe HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def open_fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    async def inbox(self) -> int:
        ((status, _, body),) = await exchange(
            self.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        assert status == 200
        return int(orjson.loads(body)["store"]["inbox"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("serve")
    port = _free_port()
    config = {
        "server": {"host": "127.0.0.1", "port": port},
        "store": {"url": f"sqlite:///{tmp / 'paybridge.db'}"},
        "sources": {"stripe": {"signing_secrets": [STRIPE_SECRET]}},
    }
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "bridge.cli", "serve", "-c", str(path)]
    proc = subprocess.Popen(cmd, cwd=tmp, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_for_listener(port, proc)
        yield Served(proc, port)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def _pad(n: int) -> list[str]:
    return [f"X{i}: v" for i in range(n)]


# Every request carries Host, Stripe-Signature, Content-Type and Content-Length.
_FITS = {"8,190-byte value": [f"X-Note: {'n' * 8190}"], "128 headers": _pad(124)}
_OVER = {
    "8,191-byte value": [f"X-Note: {'n' * 8191}"],
    "129 headers": _pad(125),
    "62 KB head, 7,000 headers": _pad(7000),
}


async def test_oversize_heads_are_400_and_store_nothing_however_split(served: Served) -> None:
    for name, extra in _FITS.items():
        raw = request(signed_event(f"evt_fits_{len(extra)}"), extra=extra)
        assert (await exchange(served.port, raw))[0][0] == 200, name
    stored = await served.inbox()
    for name, extra in _OVER.items():
        raw = request(signed_event(f"evt_over_{len(extra)}"), extra=extra)
        assert 60_000 < len(raw) < 70_000 or name != "62 KB head, 7,000 headers"
        assert (await exchange(served.port, raw))[0][0] == 400, name
        for piece in (1000, 7):
            assert (await send_in_pieces(served.port, raw, piece))[0] == 400, (name, piece)
    assert await served.inbox() == stored


async def test_bare_lf_line_endings_are_400_promptly(served: Served) -> None:
    """Answered within a generous 5 s (the former ingress never answered; the client gave up
    after the 75 s keep-alive)."""
    body = signed_event("evt_bare_lf")
    crlf = request(body)
    for raw in (crlf.replace(b"\r\n", b"\n"), crlf.replace(b"\r\nContent-Type", b"\nContent-Type")):
        async with connect(served.port) as (reader, writer):
            writer.write(raw)
            status, _, _ = await read_response(reader, timeout_s=5)
        assert status == 400
    assert (await exchange(served.port, crlf))[0][0] == 200  # the same request, CRLF


def _flood(port: int, stop: threading.Event, read_answers: bool) -> int:
    """Pipeline empty provider POSTs on one connection until ``stop``; with ``read_answers``
    the answers are read and dropped, else never read. Returns how many were sent."""
    batch = _EMPTY_POST * 500
    sent = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(0.2)
        if read_answers:
            threading.Thread(target=_drain, args=(sock, stop), daemon=True).start()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                sock.sendall(batch)
                sent += 500
    return sent


def _drain(sock: socket.socket, stop: threading.Event) -> None:
    with contextlib.suppress(OSError):
        while not stop.is_set() and sock.recv(1 << 16):
            pass


async def _post_times(port: int, prefix: str, n: int) -> list[float]:
    """``n`` signed posts on one fresh connection each; the seconds each took to answer."""
    times = []
    for i in range(n):
        started = time.monotonic()
        ((status, _, _),) = await exchange(port, request(signed_event(f"{prefix}_{i}")))
        times.append(time.monotonic() - started)
        assert status == 200
    return times


@pytest.mark.parametrize("read_answers", [True, False], ids=["reading", "not-reading"])
async def test_pipelined_empty_posts_keep_rss_flat_and_others_prompt(
    served: Served, read_answers: bool
) -> None:
    """One connection pipelines empty POSTs as fast as the socket takes them for 3 s while
    another client posts 20 events: RSS stays within 50 MB of where it started (the former
    ingress: +440 MB in 2 s, +2.7 GB in 10 s) and every other post is answered within 1 s, or
    50 times its time before the flood (former: up to 16 s)."""
    tag = f"evt_flood_{'r' if read_answers else 'n'}"
    before = await _post_times(served.port, f"{tag}_before", 5)
    rss_before = served.rss_mb()
    stop = threading.Event()
    started = time.monotonic()
    flood = asyncio.ensure_future(asyncio.to_thread(_flood, served.port, stop, read_answers))
    try:
        await asyncio.sleep(1.0)
        during = await _post_times(served.port, tag, 20)
        await asyncio.sleep(max(0.0, started + 3.0 - time.monotonic()))
        rss_during = served.rss_mb()
    finally:
        stop.set()
        sent = await asyncio.wait_for(flood, 30)
    assert sent > 5_000  # the flood ran
    assert rss_during - rss_before < 50, (rss_before, rss_during)
    assert max(during) < max(1.0, 50 * max(before)), (before, during)


async def test_two_thousand_idle_connections_cost_little(served: Served) -> None:
    """Under 16 KiB each (the former ingress allocated 64 KiB per connection up front), and the
    server still answers."""
    rss_before = served.rss_mb()
    fds_before = served.open_fds()
    socks = []
    try:
        for _ in range(2000):
            socks.append(socket.create_connection(("127.0.0.1", served.port)))
        deadline = time.monotonic() + 30
        while served.open_fds() < fds_before + 2000:
            assert time.monotonic() < deadline, "the server did not accept every connection"
            await asyncio.sleep(0.05)
        grown_kib = (served.rss_mb() - rss_before) * 1024
        ((status, _, _),) = await exchange(served.port, request(signed_event("evt_idle_2000")))
    finally:
        for sock in socks:
            sock.close()
    assert grown_kib < 2000 * 16, grown_kib
    assert status == 200
