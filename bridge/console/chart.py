"""The overview's 24-hour chart as plain geometry, drawn by the template as inline SVG.

A pure function of the hourly counts: no clock, no I/O, nothing but numbers reaches the SVG.
Events are bars; failed attempts a polyline over them, on the same scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["Bar", "Chart", "activity_chart"]

WIDTH = 720
HEIGHT = 180
_PAD_LEFT = 40
_PAD_BOTTOM = 20
_PAD_TOP = 10


@dataclass(frozen=True, slots=True)
class Bar:
    """One hour: its bar of events and the failed attempts of that hour."""

    x: float
    y: float
    width: float
    height: float
    events: int
    failed: int
    label: str  # the hour it starts, "HH:00" UTC


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    plot_bottom: float
    plot_left: float
    y_max: int
    bars: list[Bar]
    failed_points: str  # SVG polyline points
    x_labels: list[tuple[float, str]]


def _nice_max(value: int) -> int:
    """The axis top: 1, 2 or 5 times a power of ten, at least ``value`` (and at least 1)."""
    power = 1
    while True:
        for m in (1, 2, 5):
            if m * power >= value:
                return m * power
        power *= 10


def activity_chart(starts: list[float], events: list[int], failed: list[int]) -> Chart:
    """Geometry for buckets starting at ``starts`` (unix s) with their ``events`` and
    ``failed`` attempt counts (same lengths)."""
    n = len(starts)
    y_max = _nice_max(max([*events, *failed, 1]))
    plot_w = WIDTH - _PAD_LEFT
    plot_h = HEIGHT - _PAD_BOTTOM - _PAD_TOP
    bottom = HEIGHT - _PAD_BOTTOM
    slot = plot_w / n if n else plot_w
    bars: list[Bar] = []
    points: list[str] = []
    labels: list[tuple[float, str]] = []
    for i, (start, ev, fa) in enumerate(zip(starts, events, failed, strict=True)):
        x = _PAD_LEFT + i * slot
        h = plot_h * ev / y_max
        label = datetime.fromtimestamp(start, UTC).strftime("%H:00")
        bars.append(
            Bar(
                round(x + 1, 1),
                round(bottom - h, 1),
                round(slot - 2, 1),
                round(h, 1),
                ev,
                fa,
                label,
            )
        )
        points.append(f"{x + slot / 2:.1f},{bottom - plot_h * fa / y_max:.1f}")
        if i % 6 == 0:
            labels.append((round(x, 1), label))
    return Chart(WIDTH, HEIGHT, bottom, _PAD_LEFT, y_max, bars, " ".join(points), labels)
