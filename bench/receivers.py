"""Local webhook receivers (``python -m bench.receivers PORT_FILE N SECRET [--record]``).

``N`` aiohttp apps on free ports in one process; their ports are written (JSON list) to
``PORT_FILE`` once all listen. Each POST is
checked against the Standard Webhooks signature paybridge sends (recomputed with the
endpoint secret); a good one counts and answers 200, a bad one counts as bad and answers 400.
``POST /reset`` zeroes everything; ``GET /stats`` on any port returns the totals of all
ports, the monotonic times of the first and last good POST and, with ``--record``, when
each provider event was first received (``source_event_id`` → ``time.monotonic()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from bridge.signing import standard_webhook_headers

__all__ = ["Tally", "make_receiver_app"]


@dataclass
class Tally:
    """Counts shared by every receiver port."""

    secret: str
    record: bool = False
    good: int = 0
    bad: int = 0
    first: float | None = None
    last: float | None = None
    times: dict[str, float] = field(default_factory=dict)

    def signature_ok(self, headers: Any, body: bytes) -> bool:
        msg_id, ts = headers.get("webhook-id"), headers.get("webhook-timestamp")
        sent = headers.get("webhook-signature", "")
        if not msg_id or not ts or not ts.isdigit():
            return False
        want = standard_webhook_headers(msg_id, int(ts), body, [self.secret])
        return want["webhook-signature"] in sent.split(" ")

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"good": self.good, "bad": self.bad, "first": self.first}
        out["last"] = self.last
        if self.record:
            out["times"] = self.times
        return out


def make_receiver_app(tally: Tally) -> web.Application:
    """One receiver: ``POST /hook`` (verify + count) and ``GET /stats``."""

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        now = time.monotonic()
        if not tally.signature_ok(request.headers, body):
            tally.bad += 1
            return web.Response(status=400)
        tally.good += 1
        tally.first = now if tally.first is None else tally.first
        tally.last = now
        if tally.record:
            src = orjson.loads(body).get("source_event_id", "")
            tally.times.setdefault(src, now)
        return web.Response(text="ok")

    async def reset(request: web.Request) -> web.Response:
        tally.good = tally.bad = 0
        tally.first = tally.last = None
        tally.times.clear()
        return web.Response(text="reset")

    async def stats(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(tally.stats()), content_type="application/json")

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset", reset)
    return app


async def _serve(port_file: Path, n: int, tally: Tally) -> None:
    runners = []
    ports = []
    for _ in range(n):
        runner = web.AppRunner(make_receiver_app(tally), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        ports.append(server.sockets[0].getsockname()[1])
        runners.append(runner)
    tmp = port_file.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps(ports))
    tmp.rename(port_file)
    try:
        await asyncio.Event().wait()
    finally:
        for runner in runners:
            await runner.cleanup()


def main(argv: list[str]) -> int:
    port_file, n, secret = Path(argv[1]), int(argv[2]), argv[3]
    tally = Tally(secret=secret, record="--record" in argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(port_file, n, tally))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
