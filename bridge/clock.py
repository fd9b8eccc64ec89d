"""Time as paybridge reads and waits for it, injected so tests drive it instead of sleeping.

A :class:`Clock` is called for wall time (unix seconds: what is stored and signed), gives
monotonic time (for ages and leases measured here), waits for an event with a timeout (the
poll loops) and sleeps (the periodic jobs). :data:`SYSTEM_CLOCK` is the real one; tests pass
one they advance by hand. A plain ``() -> float`` is accepted where a clock is
(:func:`as_clock`): it replaces wall time only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock", "WallClock", "as_clock"]


@runtime_checkable
class Clock(Protocol):
    """Wall time when called, monotonic time, and a wait that the clock's time ends."""

    def __call__(self) -> float: ...
    def monotonic(self) -> float: ...
    async def wait(self, event: asyncio.Event, timeout_s: float) -> bool:
        """Wait until ``event`` is set (True) or ``timeout_s`` of this clock pass (False)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return once ``seconds`` of this clock have passed."""
        ...


class SystemClock:
    """The machine's clocks: :func:`time.time`, :func:`time.monotonic`, asyncio timeouts."""

    def __call__(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def wait(self, event: asyncio.Event, timeout_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await event.wait()
                return True
        return False

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()


class WallClock(SystemClock):
    """The system clock with wall time read from ``wall`` (e.g. a test's frozen time)."""

    def __init__(self, wall: Callable[[], float]) -> None:
        self._wall = wall

    def __call__(self) -> float:
        return self._wall()


def as_clock(clock: Clock | Callable[[], float]) -> Clock:
    """``clock`` if it is a :class:`Clock`, else the system clock with ``clock`` as wall time."""
    return clock if isinstance(clock, Clock) else WallClock(clock)
