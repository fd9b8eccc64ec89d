"""The injected clock: the system one waits in real time, the tests' one only when advanced."""

from __future__ import annotations

import asyncio

from bridge.clock import SYSTEM_CLOCK, Clock, as_clock
from tests.receivers import ManualClock


async def test_the_system_clock_waits_for_the_event_or_the_timeout() -> None:
    event = asyncio.Event()
    assert await SYSTEM_CLOCK.wait(event, 0.01) is False
    event.set()
    assert await SYSTEM_CLOCK.wait(event, 60) is True


async def test_a_manual_wait_ends_when_the_clock_is_advanced_past_it() -> None:
    clock = ManualClock()
    waiting = asyncio.ensure_future(clock.wait(asyncio.Event(), 5))
    await asyncio.sleep(0)  # the wait starts: its deadline is 5 s from now
    clock.advance(4)
    await asyncio.sleep(0)
    assert not waiting.done()
    clock.advance(1)
    assert await waiting is False
    assert clock.monotonic() == 5


async def test_a_manual_wait_ends_when_the_event_is_set() -> None:
    clock, event = ManualClock(), asyncio.Event()
    waiting = asyncio.ensure_future(clock.wait(event, 5))
    event.set()
    assert await waiting is True


def test_a_plain_callable_replaces_wall_time_only() -> None:
    clock = as_clock(lambda: 1234.5)
    assert isinstance(clock, Clock) and clock() == 1234.5
    manual = ManualClock()
    assert as_clock(manual) is manual
