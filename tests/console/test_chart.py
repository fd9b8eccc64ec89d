"""The 24-hour chart's geometry: a pure function of the counts."""

from __future__ import annotations

from bridge.console.chart import HEIGHT, activity_chart


def test_bars_scale_to_a_round_axis_top() -> None:
    starts = [3600.0 * i for i in range(24)]
    events = [0] * 24
    events[5] = 7
    failed = [0] * 24
    failed[5] = 3
    chart = activity_chart(starts, events, failed)
    assert chart.y_max == 10
    assert len(chart.bars) == 24
    tall = chart.bars[5]
    assert tall.events == 7 and tall.failed == 3 and tall.label == "05:00"
    assert tall.height > 0 and all(b.height == 0 for i, b in enumerate(chart.bars) if i != 5)
    assert tall.y + tall.height == chart.plot_bottom
    assert len(chart.failed_points.split()) == 24
    assert [label for _, label in chart.x_labels] == ["00:00", "06:00", "12:00", "18:00"]


def test_empty_activity_still_draws_an_axis() -> None:
    chart = activity_chart([0.0, 3600.0], [0, 0], [0, 0])
    assert chart.y_max == 1
    assert all(b.height == 0 for b in chart.bars)
    assert all(0 <= float(p.split(",")[1]) <= HEIGHT for p in chart.failed_points.split())


def test_axis_top_is_one_two_or_five_times_a_power_of_ten() -> None:
    tops = [activity_chart([0.0], [n], [0]).y_max for n in (1, 2, 3, 6, 11, 99, 101, 2500)]
    assert tops == [1, 2, 5, 10, 20, 100, 200, 5000]
