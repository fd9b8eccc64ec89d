"""Reading the events page's query string: valid filters applied, bad ones reported."""

from __future__ import annotations

import pytest

from bridge.console.filters import parse_cursor, parse_event_filters, parse_time
from bridge.store.base import EventQuery


def test_every_filter_is_read() -> None:
    f = parse_event_filters(
        {
            "type": "invoice.paid",
            "source": "stripe",
            "from": "2026-12-08T10:00",
            "to": "1765200000",
            "customer": " cus_1 ",
            "subscription": "sub_1",
            "invoice": "in_1",
        }
    )
    assert f.errors == []
    assert f.query == EventQuery(
        type="invoice.paid",
        source="stripe",
        created_from=1796724000,
        created_to=1765200000,
        customer="cus_1",
        subscription="sub_1",
        invoice="in_1",
    )
    assert f.values["customer"] == "cus_1"


def test_empty_filters_match_everything() -> None:
    assert parse_event_filters({"type": "", "customer": "  "}).query == EventQuery()


def test_bad_values_are_reported_and_ignored() -> None:
    f = parse_event_filters({"source": "paypal", "from": "yesterday", "to": "٣"})
    assert f.query == EventQuery()
    assert len(f.errors) == 3


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0", 0.0),
        ("2026-12-08T00:00:00Z", 1796688000.0),
        ("2026-12-08T01:00:00+01:00", 1796688000.0),
        ("2026-12-08", 1796688000.0),
    ],
)
def test_parse_time(raw: str, expected: float) -> None:
    assert parse_time(raw) == expected


def test_cursor_is_a_plain_integer_or_nothing() -> None:
    assert parse_cursor("42") == 42
    assert parse_cursor(None) is None
    assert parse_cursor("-1") is None
    assert parse_cursor("4e2") is None
    assert parse_cursor("9" * 30) is None
