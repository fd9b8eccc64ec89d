"""``python -m bench.calibrate``: the speed of this core right now, as millions of iterations per
second of a fixed pure-Python loop (best of 3; about 0.1 s). The harness runs it pinned to the
server core just before every load run: on this VM the same code runs up to 2x slower for a
minute at a time, and this number says when."""

from __future__ import annotations

import sys
import time

__all__ = ["loop_speed"]

_N = 200_000


def loop_speed() -> float:
    """Millions of loop iterations per second (dict stores and integer arithmetic)."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        table: dict[int, int] = {}
        for i in range(_N):
            table[i & 1023] = i * 3 + 1
        best = min(best, time.perf_counter() - start)
    return round(_N / best / 1e6, 3)


if __name__ == "__main__":
    sys.stdout.write(f"{loop_speed()}\n")
