"""docs/events.md cannot drift from the code: its mapping table lists exactly the catalog's
types, its Stripe column agrees with each type's origin, and its list of Stripe event types is
exactly the set the normalizer has rules for."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adapters import stripe_normalize
from bridge.catalog import CATALOG

DOC = Path(__file__).resolve().parents[1] / "docs" / "events.md"
_TYPE_CELL = re.compile(r"^`([a-z0-9_.]+)`$")


def _section(text: str, heading: str) -> str:
    """The text under ``## heading`` up to the next ``## `` heading."""
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def _table_rows(section: str) -> list[list[str]]:
    """Cells of every body row of the markdown tables in ``section`` (header and separator
    rows skipped)."""
    rows = []
    for line in section.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "canonical type":
            continue
        rows.append(cells)
    return rows


def _mapping_rows() -> dict[str, list[str]]:
    rows = _table_rows(_section(DOC.read_text(encoding="utf-8"), "Mapping table"))
    out: dict[str, list[str]] = {}
    for cells in rows:
        match = _TYPE_CELL.match(cells[0])
        assert match, f"first cell is not one `type`: {cells[0]!r}"
        assert match.group(1) not in out, f"{match.group(1)} is listed twice"
        assert len(cells) == 4, f"row of {match.group(1)} has {len(cells)} cells, not 4"
        out[match.group(1)] = cells
    return out


def test_docs_events_table_lists_exactly_the_catalog() -> None:
    documented = set(_mapping_rows())
    assert documented - set(CATALOG) == set(), "documented types missing from the catalog"
    assert set(CATALOG) - documented == set(), "catalog types missing from docs/events.md"


def test_docs_events_table_stripe_column_matches_origin() -> None:
    for event_type, (_, rule, key, payment_kit) in _mapping_rows().items():
        origin = CATALOG[event_type].origin
        if origin == "payment_kit":
            assert rule.startswith("—") and key == "—", f"{event_type} has no Stripe rule"
        else:
            assert not rule.startswith("—") and "`" in key, f"{event_type}: rule and key"
        assert payment_kit, f"{event_type}: the Payment Kit column is empty"


@pytest.mark.parametrize(
    ("event_type", "key"),
    [
        ("customer.subscription.recovered", "`stripe:{evt}`"),
        ("payment.failed", "`payment_failed:{pi}:{evt}`"),
        ("customer.subscription.renewed", "`invoice:{in}:renewed`"),
        ("payment.succeeded", "`payment:{pi}`"),
    ],
)
def test_docs_events_table_states_the_keys_the_code_uses(event_type: str, key: str) -> None:
    """The keys that are not the obvious ones (and the payment keys) are written down."""
    assert key in _mapping_rows()[event_type][2]


def test_docs_events_stripe_types_are_the_normalizer_rules() -> None:
    text = DOC.read_text(encoding="utf-8")
    block = text[text.index("<!-- stripe-types -->") : text.index("<!-- /stripe-types -->")]
    listed = re.findall(r"^- `([a-z0-9_.]+)`$", block, flags=re.MULTILINE)
    assert len(listed) == len(set(listed)), "a Stripe type is listed twice"
    assert set(listed) == set(stripe_normalize._RULES)


def test_docs_events_answers_the_payment_question_first() -> None:
    text = DOC.read_text(encoding="utf-8")
    first = text.index("\n## ")
    assert text[first:].startswith("\n## Which events prove a payment happened?")
    assert "payment.succeeded" in _section(text, "Which events prove a payment happened?")
