"""Reading the console's query strings into store queries: pure functions, no I/O.

Times are typed as UTC (``2026-12-08T14:30``, the value of an ``<input type=datetime-local>``)
or given as unix seconds; a bad value is reported and ignored, never half-applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bridge.store.base import EventQuery

__all__ = ["EventFilters", "parse_cursor", "parse_event_filters", "parse_time"]

_SOURCES = ("stripe", "payment_kit")
_MAX_TEXT = 200


def parse_time(raw: str) -> float:
    """Unix seconds of ``raw``: digits (unix seconds) or an ISO 8601 date-time, UTC unless it
    says otherwise. Raises ValueError."""
    raw = raw.strip()
    if raw.isascii() and raw.isdigit():  # str.isdigit() alone accepts non-ASCII digits
        return float(raw)
    parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def parse_cursor(raw: str | None) -> int | None:
    """A keyset cursor (the last row's sequence number), or None for the first page."""
    if raw and raw.isascii() and raw.isdigit() and len(raw) < 19:
        return int(raw)
    return None


@dataclass(frozen=True, slots=True)
class EventFilters:
    """The events page's filters: the store query, the form's values, what was refused."""

    query: EventQuery
    values: dict[str, str]
    errors: list[str] = field(default_factory=list)


def _text(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name, "").strip()
    return value[:_MAX_TEXT] or None


def parse_event_filters(query: Mapping[str, str]) -> EventFilters:
    """The filters of the events page from its query string."""
    errors: list[str] = []
    values = {k: query.get(k, "").strip()[:_MAX_TEXT] for k in _FIELDS}
    source = _text(query, "source")
    if source is not None and source not in _SOURCES:
        errors.append(f"source must be one of {', '.join(_SOURCES)}")
        source = None
    bounds: dict[str, int | None] = {}
    for name in ("from", "to"):
        raw = _text(query, name)
        bounds[name] = None
        if raw is not None:
            try:
                bounds[name] = int(parse_time(raw))
            except (ValueError, OverflowError, OSError):
                errors.append(f"{name}: not a date-time (e.g. 2026-12-08T14:30, UTC)")
    return EventFilters(
        EventQuery(
            type=_text(query, "type"),
            source=source,
            created_from=bounds["from"],
            created_to=bounds["to"],
            customer=_text(query, "customer"),
            subscription=_text(query, "subscription"),
            invoice=_text(query, "invoice"),
        ),
        values,
        errors,
    )


_FIELDS = ("type", "source", "from", "to", "customer", "subscription", "invoice")
