"""The load generator: a separate process posting signed events over 127.0.0.1.

``python -m bench.loadgen SPEC_JSON`` prints one JSON result line. The spec::

    {"url": ..., "count": N, "concurrency": 64, "max_s": 60, "secret": ..., "tag": ...,
     "rate": null | events/s, "warmup": 0, "cpu": null | core}

Closed loop (``rate`` null): ``concurrency`` connections each post the next event as soon as
the previous one is answered, until ``count`` requests or ``max_s`` seconds. Open loop
(``rate``): request ``i`` starts at ``t0 + i/rate`` whatever happened before (at most
``concurrency`` connections), and the result also maps each provider event id to the
``time.monotonic()`` at which its ack arrived (CLOCK_MONOTONIC is system-wide on Linux, so
other local processes can compare their own timestamps with it).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from bench.payload import BENCH_SECRET, EventFactory
from bench.stats import percentile

__all__ = ["LoadResult", "run_load"]


@dataclass
class LoadResult:
    """What one load run observed (latencies in milliseconds)."""

    sent: int = 0
    ok: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    acks: dict[str, float] = field(default_factory=dict)
    elapsed_s: float = 0.0
    body_bytes: int = 0
    cpu_s: float = 0.0

    def summary(self, keep_acks: bool) -> dict[str, Any]:
        rate = self.ok / self.elapsed_s if self.elapsed_s > 0 else 0.0
        out: dict[str, Any] = {
            "sent": self.sent,
            "ok": self.ok,
            "statuses": dict(self.statuses),
            "elapsed_s": round(self.elapsed_s, 4),
            "rate": round(rate, 1),
            "p50_ms": percentile(self.latencies_ms, 50),
            "p99_ms": percentile(self.latencies_ms, 99),
            "body_bytes": self.body_bytes,
            "loadgen_cpu": round(self.cpu_s / self.elapsed_s, 3) if self.elapsed_s else None,
        }
        if keep_acks:
            out["acks"] = self.acks
        return out


class _Conn:
    """One keep-alive HTTP/1.1 connection (asyncio streams): the load generator writes
    pre-formatted requests and reads ``Content-Length`` responses. aiohttp's client costs
    about 110 µs of CPU per request here, which capped it below the bare baseline."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, head: bytes, body: bytes) -> int:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        try:
            self.writer.write(head + body)
            status_line = await self.reader.readuntil(b"\r\n")
            headers = await self.reader.readuntil(b"\r\n\r\n")
            length = _content_length(headers)
            await self.reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            self.close()
            raise
        if b"connection: close" in headers.lower():
            self.close()
        return int(status_line.split(b" ", 2)[1])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _content_length(headers: bytes) -> int:
    for line in headers.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise ValueError("response without Content-Length")


class _Run:
    def __init__(self, spec: dict[str, Any]) -> None:
        url = urlsplit(spec["url"])
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.head = (
            f"POST {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            "Content-Type: application/json\r\nStripe-Signature: {sig}\r\n"
            "Content-Length: {length}\r\n\r\n"
        )
        self.count: int = int(spec["count"])
        self.deadline = time.monotonic() + float(spec.get("max_s", 60))
        self.factory = EventFactory(spec.get("secret", BENCH_SECRET), spec.get("tag", ""))
        self.next = 0
        self.res = LoadResult(body_bytes=self.factory.size)

    async def post(self, conn: _Conn, i: int) -> None:
        event_id, body, headers = self.factory.make(i)
        head = self.head.format(sig=headers["Stripe-Signature"], length=len(body)).encode()
        self.res.sent += 1
        start = time.monotonic()
        try:
            status = str(await conn.request(head, body))
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            status = type(e).__name__
        end = time.monotonic()
        self.res.statuses[status] += 1
        if status == "200":
            self.res.ok += 1
            self.res.latencies_ms.append((end - start) * 1000)
            self.res.acks[event_id] = end

    async def worker(self) -> None:
        conn = _Conn(self.host, self.port)
        while self.next < self.count and time.monotonic() < self.deadline:
            i = self.next
            self.next += 1
            await self.post(conn, i)
        conn.close()

    async def paced(self, rate: float, concurrency: int) -> None:
        pool: asyncio.Queue[_Conn] = asyncio.Queue()
        for _ in range(concurrency):
            pool.put_nowait(_Conn(self.host, self.port))

        async def one(i: int) -> None:
            conn = await pool.get()
            try:
                await self.post(conn, i)
            finally:
                pool.put_nowait(conn)

        t0 = time.monotonic()
        tasks: set[asyncio.Task[None]] = set()
        for i in range(self.count):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.monotonic() >= self.deadline:
                break
            task = asyncio.create_task(one(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks)
        while not pool.empty():
            pool.get_nowait().close()


async def run_load(spec: dict[str, Any]) -> LoadResult:
    """Run one load as described in the module docstring (warm-up requests first)."""
    concurrency = int(spec.get("concurrency", 64))
    warm_tag = "w" + spec.get("tag", "")
    warm = _Run({**spec, "count": int(spec.get("warmup", 0)), "tag": warm_tag})
    await asyncio.gather(*(warm.worker() for _ in range(concurrency)))
    run = _Run(spec)
    cpu0, start = time.process_time(), time.monotonic()
    if spec.get("rate"):
        await run.paced(float(spec["rate"]), concurrency)
    else:
        await asyncio.gather(*(run.worker() for _ in range(concurrency)))
    run.res.elapsed_s = time.monotonic() - start
    run.res.cpu_s = time.process_time() - cpu0
    return run.res


def main(argv: list[str]) -> int:
    spec = orjson.loads(argv[1])
    if spec.get("cpu") is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(spec["cpu"])})
    res = asyncio.run(run_load(spec))
    sys.stdout.write(orjson.dumps(res.summary(bool(spec.get("rate")))).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
