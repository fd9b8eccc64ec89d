"""Fan-out baseline: a raw aiohttp client POST loop to the receivers
(``python -m bench.poster COUNT PER_ENDPOINT PORT [PORT ...]``).

Posts ``COUNT`` Standard-Webhooks-signed ~3 KB bodies round-robin over the receiver ports with
``PER_ENDPOINT`` requests in flight per port (paybridge's ``max_in_flight_per_endpoint``),
nothing stored; prints ``{"ok", "elapsed_s", "rate"}`` as JSON.
"""

from __future__ import annotations

import asyncio
import sys
import time

import aiohttp
import orjson

from bench.config import RECEIVER_SECRET
from bench.payload import EventFactory
from bridge.signing import standard_webhook_headers

__all__ = ["post_loop"]


async def post_loop(count: int, per_endpoint: int, ports: list[int]) -> dict[str, float]:
    """Run the loop; returns ``{"ok", "errors", "elapsed_s", "rate"}``."""
    factory = EventFactory(tag="poster")
    _, body, _ = factory.make(0)
    next_i = 0
    ok = errors = 0

    async def worker(session: aiohttp.ClientSession, port: int) -> None:
        nonlocal next_i, ok, errors
        url = f"http://127.0.0.1:{port}/hook"
        while next_i < count:
            i = next_i
            next_i += 1
            headers = standard_webhook_headers(
                f"evt_poster_{i}", int(time.time()), body, [RECEIVER_SECRET]
            )
            headers["Content-Type"] = "application/json"
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    ok += resp.status == 200
                    errors += resp.status != 200
            except (aiohttp.ClientError, OSError):
                errors += 1

    connector = aiohttp.TCPConnector(limit=per_endpoint * len(ports), limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.monotonic()
        await asyncio.gather(*(worker(session, p) for p in ports for _ in range(per_endpoint)))
        elapsed = time.monotonic() - start
    return {"ok": ok, "errors": errors, "elapsed_s": elapsed, "rate": ok / elapsed}


def main(argv: list[str]) -> int:
    count, per_endpoint, ports = int(argv[1]), int(argv[2]), [int(p) for p in argv[3:]]
    result = asyncio.run(post_loop(count, per_endpoint, ports))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
