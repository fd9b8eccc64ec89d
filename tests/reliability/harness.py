"""Helpers of the reliability tests: configs, service processes, a verifying receiver, a
concurrent signed-event sender and Stripe event pairs whose facts overlap.

Nothing here asserts on durations: every wait is bounded and fails naming what it waited for.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
import orjson
import yaml
from aiohttp import web
from standardwebhooks import Webhook

from bridge.events import event_id_for
from tests.conftest import STRIPE_SECRET, stripe_event, stripe_headers
from tests.receivers import subscription

__all__ = [
    "ROOT",
    "Blast",
    "Service",
    "VerifyingReceiver",
    "answer_ok",
    "blast",
    "config_data",
    "endpoint_secret",
    "facts_of",
    "free_port",
    "post_one",
    "subscription_pair",
    "wait_for",
    "write_config",
]

ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 60.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def endpoint_secret() -> str:
    """A fresh Standard Webhooks secret (``whsec_<base64 key>``)."""
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


def config_data(
    store_url: str,
    receiver_url: str,
    secret: str,
    *,
    events: Sequence[str] = ("*",),
    delivery: dict[str, Any] | None = None,
    store: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
    handler_timeout_s: float = 2.0,
) -> dict[str, Any]:
    """A complete service config: one Stripe source, one Standard Webhooks endpoint
    ``we_recv`` at ``receiver_url``, fast retries; the dicts override their sections."""
    return {
        "server": {"host": "127.0.0.1", "shutdown_timeout_s": 5.0, **(server or {})},
        "store": {"url": store_url, "lease_s": 1.0, **(store or {})},
        "sources": {"stripe": {"signing_secrets": [STRIPE_SECRET], "correlation_window_s": 0}},
        "endpoints": [
            {"id": "we_recv", "url": receiver_url, "enabled_events": list(events), "secret": secret}
        ],
        "delivery": {
            "allow_private_networks": True,
            "timeout_s": 2.0,
            "schedule_s": [0.2, 0.5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
            "jitter": 0,
            "poll_interval_s": 0.05,
            **(delivery or {}),
        },
        "bus": {"handler_timeout_s": handler_timeout_s},
    }


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def subscription_pair(sub_id: str) -> tuple[bytes, bytes]:
    """Two Stripe events about one subscription whose facts overlap: ``created`` (active) →
    ``created`` + ``started``; ``updated`` (incomplete → active) → ``updated`` + ``started``."""
    created = stripe_event("customer.subscription.created", subscription(sub_id))
    updated = stripe_event(
        "customer.subscription.updated",
        subscription(sub_id),
        previous_attributes={"status": "incomplete"},
    )
    return orjson.dumps(created), orjson.dumps(updated)


def facts_of(body: bytes) -> dict[str, str]:
    """The canonical event ids (by type) a :func:`subscription_pair` event must produce."""
    ev = orjson.loads(body)
    sub = ev["data"]["object"]["id"]
    if ev["type"] == "customer.subscription.created":
        keys = {"customer.subscription.created": f"sub:{sub}:created"}
    else:
        keys = {"customer.subscription.updated": f"stripe:{ev['id']}"}
    keys["customer.subscription.started"] = f"sub:{sub}:started"
    return {t: event_id_for(t, k) for t, k in keys.items()}


async def wait_for(check: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    """Poll ``check`` (bounded); AssertionError naming ``what`` when it never holds."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


# -- the service as a process -------------------------------------------------------------------
@dataclass
class Service:
    """``paybridge serve`` (or ``tests.reliability.app_proc`` when ``app`` is given) as a
    subprocess on ``port``; stderr goes to ``log``."""

    config: Path
    port: int
    log: Path
    app: list[str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    _out: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Service:
        if self.app is None:
            cmd = ["-m", "bridge.cli", "serve", "-c", str(self.config), "--port", str(self.port)]
        else:
            cmd = ["-m", "tests.reliability.app_proc", str(self.config), str(self.port), *self.app]
        self._out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, *cmd],
            cwd=self.config.parent,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=self._out,
            stderr=self._out,
        )
        return self

    async def ready(self, timeout_s: float = 30.0) -> Service:
        """Wait until ``/healthz`` answers 200; fails if the process exits first."""
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as session:
            while True:
                assert self.proc is not None and self.proc.poll() is None, self.log_text()
                try:
                    async with session.get(self.url + "/healthz") as resp:
                        if resp.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, "service never became ready"
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL, no cleanup at all."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.wait(10)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float) -> int:
        """Wait (bounded) for the exit; returns the exit status."""
        assert self.proc is not None
        code = self.proc.wait(timeout_s)
        if self._out is not None:
            self._out.close()
            self._out = None
        return code

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


# -- the receiver -------------------------------------------------------------------------------
Respond = Callable[[str, int], Awaitable[int]]


async def answer_ok(_webhook_id: str, _n: int) -> int:
    return 200


@dataclass
class VerifyingReceiver:
    """A webhook receiver on 127.0.0.1: verifies every request with ``standardwebhooks``,
    records arrivals per ``webhook-id`` (time.time()), answers with ``respond(id, n)`` (n: how
    many times this id arrived before), and keeps the set of ids it answered 2xx."""

    secret: str
    respond: Respond = answer_ok
    arrivals: dict[str, list[float]] = field(default_factory=dict)
    delivered: set[str] = field(default_factory=set)
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    bad_signatures: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> VerifyingReceiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
        except Exception:
            self.bad_signatures += 1
            return web.Response(status=400, text="bad signature")
        wid = request.headers["webhook-id"]
        seen = self.arrivals.setdefault(wid, [])
        n = len(seen)
        seen.append(time.time())
        self.bodies[wid] = payload
        status = await self.respond(wid, n)
        if 200 <= status < 300:
            self.delivered.add(wid)
        return web.Response(status=status, text="ok" if status < 300 else "no")


# -- the sender ---------------------------------------------------------------------------------
@dataclass
class Blast:
    """Outcome of :func:`blast`: HTTP status per body index, None when no response came."""

    statuses: list[int | None]

    def acked(self) -> list[int]:
        return [i for i, s in enumerate(self.statuses) if s is not None and 200 <= s < 300]

    def unacked(self) -> list[int]:
        return [i for i, s in enumerate(self.statuses) if s is None or not 200 <= s < 300]


async def post_one(session: aiohttp.ClientSession, url: str, body: bytes) -> int | None:
    """POST one signed Stripe event; the status, or None on a connection error."""
    try:
        async with session.post(
            url + "/webhooks/stripe", data=body, headers=stripe_headers(body)
        ) as resp:
            await resp.read()
            return resp.status
    except (aiohttp.ClientError, TimeoutError):
        return None


async def blast(
    urls: Sequence[str],
    bodies: Sequence[bytes],
    *,
    connections: int = 32,
    on_ack: Callable[[int], None] | None = None,
) -> Blast:
    """POST every body (signed) with ``connections`` concurrent connections, body ``i`` to
    ``urls[i % len(urls)]``; ``on_ack(n)`` is called after the n-th 2xx."""
    statuses: list[int | None] = [None] * len(bodies)
    acks = 0
    next_index = 0
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal acks, next_index
            while next_index < len(bodies):
                i = next_index
                next_index += 1
                status = await post_one(session, urls[i % len(urls)], bodies[i])
                statuses[i] = status
                if status is not None and 200 <= status < 300:
                    acks += 1
                    if on_ack is not None:
                        on_ack(acks)

        await asyncio.gather(*(worker() for _ in range(connections)))
    return Blast(statuses)
