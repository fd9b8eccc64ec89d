"""What paybridge needs from a Stripe account (adapters/stripe_setup.py): the list of event
types is the rule table's, the README shows exactly that list, endpoints are checked by it."""

from __future__ import annotations

from pathlib import Path

from adapters.stripe_normalize import handled_event_types
from adapters.stripe_setup import WHY, event_types, report_endpoint, subscribe_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_handled_type_says_why_it_matters_and_nothing_else_is_listed() -> None:
    assert set(WHY) == set(handled_event_types()) == set(event_types())
    assert all(len(why) > 10 for why in WHY.values())


def test_readme_lists_exactly_the_generated_event_types() -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- stripe-event-types:start -->\n") + len(
        "<!-- stripe-event-types:start -->\n"
    )
    end = text.index("\n<!-- stripe-event-types:end -->")
    assert text[start:end] == subscribe_markdown(), "regenerate with subscribe_markdown()"


def test_report_endpoint_names_missing_types_and_the_basil_consequence() -> None:
    sent = [t for t in event_types() if t not in ("invoice_payment.paid", "refund.updated")]
    report = report_endpoint(
        {"id": "we_1", "url": "https://x/webhooks/stripe", "status": "enabled",
         "api_version": "2025-03-31.basil", "enabled_events": sent},
        event_types(),
    )  # fmt: skip

    assert report.missing == ["invoice_payment.paid", "refund.updated"]
    text = "\n".join(report.lines())
    assert "2025-03-31.basil" in text and "matched to invoices by customer" in text


def test_report_endpoint_wildcard_misses_nothing() -> None:
    report = report_endpoint({"id": "we_2", "enabled_events": ["*"]}, event_types())
    assert report.missing == [] and report.api_version is None
    assert "account's default API version" in report.lines()[0]
