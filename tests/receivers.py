"""Scripted local webhook receivers: real aiohttp servers on 127.0.0.1 for delivery tests.

A :class:`Receiver` records every request it gets and answers from a *script*: an async
function of the request's 0-based index and the request. Ready-made scripts: :func:`ok`,
:func:`fail_first` (500 n times, then 200), :func:`always`, :func:`retry_after_first`,
:func:`redirect_to`, :func:`held_by` (slow until a gate opens).

Waiting is always bounded (:meth:`Receiver.wait_for`): a test fails with a clear message
instead of hanging, and nothing asserts on how long anything took.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from bridge.clock import SystemClock
from bridge.store.base import Store

__all__ = [
    "ManualClock",
    "Received",
    "Receiver",
    "Script",
    "always",
    "fail_first",
    "held_by",
    "ok",
    "redirect_to",
    "retry_after_first",
    "running",
    "subscription",
    "wait_until",
]

Script = Callable[[int, web.Request], Awaitable[web.StreamResponse]]
WAIT_S = 20.0


@dataclass(frozen=True)
class Received:
    """One request as the receiver saw it (raw body bytes, all headers)."""

    method: str
    path: str
    headers: CIMultiDict[str]
    body: bytes


def always(status: int, body: str = "", headers: dict[str, str] | None = None) -> Script:
    """Answer every request with ``status``."""

    async def script(_n: int, _req: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=body, headers=headers)

    return script


def ok() -> Script:
    """200 to everything."""
    return always(200, "ok")


def fail_first(n: int, status: int = 500, body: str = "boom") -> Script:
    """``status`` for the first ``n`` requests, 200 afterwards."""

    async def script(i: int, _req: web.Request) -> web.StreamResponse:
        return web.Response(status=status if i < n else 200, text=body if i < n else "ok")

    return script


def retry_after_first(value: str, n: int = 1, status: int = 503) -> Script:
    """``status`` with ``Retry-After: value`` for the first ``n`` requests, then 200."""

    async def script(i: int, _req: web.Request) -> web.StreamResponse:
        if i < n:
            return web.Response(status=status, headers={"Retry-After": value})
        return web.Response(text="ok")

    return script


def redirect_to(location: str, status: int = 302) -> Script:
    """Always redirect to ``location`` (paybridge must not follow)."""
    return always(status, "", {"Location": location})


def held_by(gate: asyncio.Event) -> Script:
    """A slow receiver: every request waits until ``gate`` is set, then gets 200."""

    async def script(_i: int, _req: web.Request) -> web.StreamResponse:
        await gate.wait()
        return web.Response(text="ok")

    return script


class Receiver:
    """A local HTTP server that records requests and answers per its script."""

    def __init__(self, script: Script | None = None) -> None:
        self.script = script or ok()
        self.requests: list[Received] = []
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with self._changed:
            index = len(self.requests)
            self.requests.append(
                Received(request.method, request.path, CIMultiDict(request.headers), body)
            )
            self._changed.notify_all()
        return await self.script(index, request)

    async def wait_for(
        self, predicate: Callable[[list[Received]], bool], what: str, timeout_s: float = WAIT_S
    ) -> list[Received]:
        """Wait (bounded) until ``predicate(self.requests)``; raises AssertionError naming
        ``what`` when it does not happen in time."""
        try:
            async with asyncio.timeout(timeout_s), self._changed:
                await self._changed.wait_for(lambda: predicate(self.requests))
        except TimeoutError:
            raise AssertionError(
                f"receiver never got {what}: {len(self.requests)} request(s)"
            ) from None
        return list(self.requests)

    async def wait_count(self, n: int, timeout_s: float = WAIT_S) -> list[Received]:
        """Wait (bounded) until at least ``n`` requests arrived."""
        return await self.wait_for(lambda r: len(r) >= n, f"{n} request(s)", timeout_s)


@asynccontextmanager
async def running(*scripts: Script) -> AsyncIterator[list[Receiver]]:
    """Start one receiver per script; close them all afterwards."""
    receivers = [Receiver(s) for s in scripts]
    try:
        for r in receivers:
            await r.start()
        yield receivers
    finally:
        for r in receivers:
            await r.close()


class ManualClock:
    """A :class:`bridge.clock.Clock` that stands still until advanced (``Bridge(config,
    clock=clock)``): retries come due, leases age and poll loops wake only when a test says
    so. Wall time starts at the real time, so signatures stay fresh."""

    def __init__(self) -> None:
        self.now = time.time()
        self.mono = 0.0
        self._advanced = asyncio.Event()

    def __call__(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        """Move both clocks on and end every wait whose timeout is reached."""
        self.now += seconds
        self.mono += seconds
        self._advanced.set()
        self._advanced = asyncio.Event()

    async def wait(self, event: asyncio.Event, timeout_s: float) -> bool:
        deadline = self.mono + timeout_s
        while not event.is_set() and self.mono < deadline:
            advanced = asyncio.ensure_future(self._advanced.wait())
            was_set = asyncio.ensure_future(event.wait())
            await asyncio.wait({advanced, was_set}, return_when=asyncio.FIRST_COMPLETED)
            advanced.cancel()
            was_set.cancel()
        return event.is_set()

    async def sleep(self, seconds: float) -> None:
        await self.wait(asyncio.Event(), seconds)


class OffsetClock(SystemClock):
    """The real clock with wall time moved on by ``offset`` (a test jumps past a window while
    the poll loops keep running in real time)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def wait_until(
    check: Callable[[], bool | Awaitable[bool]], what: str, timeout_s: float = WAIT_S
) -> None:
    """Poll ``check`` (a predicate, or a coroutine function) until it is true; AssertionError
    naming ``what`` after ``timeout_s``. The one poll loop of the suite."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                done = check()
                if await done if inspect.isawaitable(done) else done:
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


async def nothing_held(store: Store) -> bool:
    """No PaymentIntent waits for its decision in ``store``."""
    return not (await store.counts())["held"]


def subscription(sub_id: str, status: str = "active") -> dict[str, Any]:
    """A minimal Stripe subscription object; ``customer.subscription.created`` with an active
    one normalizes to ``customer.subscription.created`` + ``customer.subscription.started``."""
    return {
        "id": sub_id,
        "object": "subscription",
        "status": status,
        "customer": "cus_test",
        "livemode": False,
        "items": {"object": "list", "data": [], "has_more": False},
    }
