"""Times as operators type them: durations back from now, unix seconds, ISO 8601."""

from __future__ import annotations

import pytest

from bridge.since import parse_duration_s, parse_since

NOW = 1_750_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("30m", 1800), ("2h", 7200), ("3d", 259200), (" 1h ", 3600)]
)
def test_since_durations(text: str, seconds: int) -> None:
    assert parse_duration_s(text) == seconds
    assert parse_since(text, now=NOW) == NOW - seconds


@pytest.mark.parametrize(
    ("value", "at"),
    [
        (1_749_990_000, 1_749_990_000.0),
        (1_749_990_000.5, 1_749_990_000.5),
        ("1749990000", 1_749_990_000.0),
        ("2025-06-15T14:40:00Z", 1_749_998_400.0),
        ("2025-06-15T16:40:00+02:00", 1_749_998_400.0),
        ("2025-06-15T14:40:00", 1_749_998_400.0),  # no zone: UTC
    ],
)
def test_since_absolute_times(value: str | float, at: float) -> None:
    assert parse_since(value, now=NOW) == at


@pytest.mark.parametrize("value", ["2 hours", "h2", "", "nan", "inf", "-5m", "yesterday", True])
def test_since_refuses_anything_else(value: str | bool) -> None:
    with pytest.raises(ValueError, match="since"):
        parse_since(value, now=NOW)


def test_since_refuses_the_future() -> None:
    with pytest.raises(ValueError, match="future"):
        parse_since(NOW + 60, now=NOW)
    with pytest.raises(ValueError, match="duration"):
        parse_duration_s("2 weeks")
