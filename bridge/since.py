"""Points in time as operators type them: a duration back from now (``30m``, ``2h``, ``3d``),
unix seconds, or an ISO 8601 timestamp. Pure: the caller passes ``now``."""

from __future__ import annotations

import re
from datetime import UTC, datetime

__all__ = ["parse_duration_s", "parse_since"]

_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration_s(text: str) -> int:
    """``30m``, ``12h``, ``3d`` → seconds. Raises ValueError for anything else."""
    m = _DURATION.match(text.strip())
    if not m:
        raise ValueError(f"a duration looks like 30m, 12h or 3d, not {text!r}")
    return int(m.group(1)) * _UNIT_S[m.group(2)]


def parse_since(value: str | float, *, now: float) -> float:
    """Unix seconds for ``value``: a number (unix seconds), a numeric string, a duration back
    from ``now`` or an ISO 8601 timestamp (UTC when it names no zone). Raises ValueError
    for anything else, and for a time after ``now``."""
    if isinstance(value, bool):  # bool is an int: refuse it rather than read 1970
        raise ValueError("since must be unix seconds, an ISO timestamp or a duration")
    at = float(value) if isinstance(value, int | float) else _parse_text(value.strip(), now)
    if at > now:
        raise ValueError("since is in the future")
    return at


def _parse_text(text: str, now: float) -> float:
    if _DURATION.match(text):
        return now - parse_duration_s(text)
    # float() accepts "nan" and "inf"; only plain decimal numbers are unix seconds.
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"since must be unix seconds, an ISO timestamp or a duration such as 2h, not {text!r}"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
