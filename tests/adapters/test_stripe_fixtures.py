"""Regression corpus: real Stripe payloads from public projects (/work/shared/fixtures/stripe)
go through parse and normalize; several produce facts asserted one by one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters.base import Link, Normalized
from adapters.stripe import StripeAdapter
from bridge.catalog import is_known
from bridge.events import Event

FIXTURES = Path("/work/shared/fixtures/stripe")
pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"{FIXTURES} is absent")
ADAPTER = StripeAdapter(["whsec_fixtures"])
ZERO = "000000000000000000000000"

# Files holding `event.data` or a bare object: the Stripe event type their name implies.
IMPLIED_TYPES = {
    "subscription.trial_ended": "customer.subscription.updated",
    "subscription.trial_will_end": "customer.subscription.trial_will_end",
    "subscription.updated": "customer.subscription.updated",
    "invoice": "invoice.paid",
}
# openapi/fixtures3.json resources (current API shape) and the event each is wrapped into.
OPENAPI_WRAPS = {
    "invoice": "invoice.paid",
    "subscription": "customer.subscription.created",
    "refund": "refund.created",
    "checkout.session": "checkout.session.completed",
    "payment_intent": "payment_intent.succeeded",
    "charge": "charge.refunded",
    "invoice_payment": "invoice_payment.paid",
}


def _files() -> list[Path]:
    if not FIXTURES.is_dir():
        return []
    return sorted(p for p in FIXTURES.rglob("*.json") if p.name != "fixtures3.json")


def _wrap(
    event_type: str, obj: dict[str, Any], previous: Any = None, name: str = "x"
) -> dict[str, Any]:
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    created = obj.get("created")
    return {
        "id": f"evt_fixture_{name}",
        "object": "event",
        "type": event_type,
        "created": created if isinstance(created, int) else 1_700_000_000,
        "data": data,
    }


def _event_of(path: Path) -> dict[str, Any]:
    """The whole event in ``path``, or one built around its `event.data` or bare object."""
    content = json.loads(path.read_bytes())
    if content.get("object") == "event":
        return dict(content)
    stem = path.name.removesuffix(".json")
    if isinstance(content.get("object"), dict):  # an `event.data` wrapper
        obj, previous = content["object"], content.get("previous_attributes")
    else:
        obj, previous = content, None
    if obj.get("object") == "invoice_payment":  # pay's invoice.updated.json holds one
        event_type = "invoice_payment.paid"
    else:
        event_type = IMPLIED_TYPES.get(stem, stem)
    return _wrap(event_type, obj, previous, stem.replace(".", "_"))


def _normalize(event: dict[str, Any]) -> Normalized:
    return ADAPTER.normalize(ADAPTER.parse(orjson.dumps(event)))


def _facts(result: Normalized) -> set[tuple[str, str]]:
    return {(e.type, e.dedupe_key) for e in result.events}


def _all_events(result: Normalized) -> list[Event]:
    return result.events + [e for d in result.deferred for e in d.events]


@pytest.mark.parametrize("path", _files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_stripe_fixture_parses_and_normalizes(path: Path) -> None:
    result = _normalize(_event_of(path))
    assert result.produces_nothing == (result.ignored_reason is not None)
    for event in _all_events(result):
        assert is_known(event.type), event.type
        assert Event.from_json(event.to_json()) == event


def _fixture(relative: str) -> dict[str, Any]:
    return _event_of(FIXTURES / relative)


IN, PI, RE = f"in_{ZERO}", f"pi_{ZERO}", f"re_{ZERO}"
EXPECTED_FACTS = {
    "stripe-ruby-mock/invoice.paid.json": {
        ("invoice.paid", f"invoice:{IN}:paid"),
        ("payment.succeeded", f"payment:{IN}"),
    },
    "stripe-ruby-mock/invoice.payment_succeeded.json": {
        ("invoice.paid", f"invoice:{IN}:paid"),
        ("payment.succeeded", f"payment:{IN}"),
    },
    "stripe-ruby-mock/invoice.payment_failed.json": {
        ("invoice.payment_failed", f"invoice:{IN}:failed:1"),
        ("payment.failed", f"payment_failed:{IN}:1"),
    },
    "stripe-ruby-mock/payment_intent.succeeded.json": {
        ("payment_intent.succeeded", f"pi:{PI}:succeeded"),
        ("payment.succeeded", f"payment:{PI}"),
    },
    "stripe-ruby-mock/charge.refunded.json": {("refund.succeeded", f"refund:{RE}:succeeded")},
    "stripe-ruby-mock/charge.refund.updated.json": {("refund.succeeded", f"refund:{RE}:succeeded")},
    "stripe-ruby-mock/checkout.session.completed.setup_mode.json": {
        ("checkout.session.completed", "checkout:cs_00000000000000:completed"),
    },
    "stripe-ruby-mock/checkout.session.completed.payment_mode.json": {
        ("checkout.session.completed", "checkout:cs_00000000000000:completed"),
        ("payment.succeeded", "payment:pi_00000000000000"),
    },
    "stripe-ruby-mock/customer.subscription.created.json": {
        ("customer.subscription.created", f"sub:sub_{ZERO}:created"),
        ("customer.subscription.started", f"sub:sub_{ZERO}:started"),
    },
    "stripe-ruby-mock/customer.subscription.deleted.json": {
        ("customer.subscription.deleted", f"sub:sub_{ZERO}:deleted"),
    },
    "stripe-ruby-mock/customer.updated.json": set(),
    "pay/invoice.payment_failed.json": {
        ("invoice.payment_failed", "invoice:in_1234:failed:1"),
        ("customer.subscription.renew_failed", "invoice:in_1234:renew_failed:1"),
        ("payment.failed", "payment_failed:in_1234:1"),
    },
    "pay/subscription.trial_will_end.json": {
        (
            "customer.subscription.trial_will_end",
            "sub:sub_00000000000000:trial_will_end:1668971983",
        ),
    },
}


@pytest.mark.parametrize(("relative", "facts"), sorted(EXPECTED_FACTS.items()))
def test_stripe_fixture_produces_the_facts_its_content_implies(
    relative: str, facts: set[tuple[str, str]]
) -> None:
    assert _facts(_normalize(_fixture(relative))) == facts


def test_stripe_fixture_pre_basil_payment_intent_with_invoice_produces_nothing() -> None:
    event = _fixture("stripe-ruby-mock/payment_intent.succeeded.json")
    event["data"]["object"]["invoice"] = IN
    result = _normalize(event)
    assert (result.events, result.deferred, result.links) == ([], [], [Link(PI, IN)])


def test_stripe_fixture_basil_invoice_payment_links_pi_to_invoice() -> None:
    result = _normalize(_fixture("pay/invoice.updated.json"))
    assert result.links == [Link("pi_3T4AIlGWAy8Dppqh3Vsl9Pya", "in_1T4AIkGWAy8DppqhJAdbjaWb")]


def test_stripe_fixture_payment_mode_checkout_names_its_standalone_pi() -> None:
    result = _normalize(_fixture("stripe-ruby-mock/checkout.session.completed.payment_mode.json"))
    assert result.standalone_payment_intents == ["pi_00000000000000"]


def _openapi(resource: str) -> dict[str, Any]:
    resources: dict[str, Any] = json.loads((FIXTURES / "openapi/fixtures3.json").read_bytes())[
        "resources"
    ]
    return _wrap(OPENAPI_WRAPS[resource], resources[resource], name=resource.replace(".", "_"))


@pytest.mark.parametrize("resource", sorted(OPENAPI_WRAPS))
def test_stripe_fixture_openapi_resources_normalize_in_current_shape(resource: str) -> None:
    result = _normalize(_openapi(resource))
    assert result.produces_nothing == (result.ignored_reason is not None)
    for event in _all_events(result):
        assert is_known(event.type)


def test_stripe_fixture_openapi_payment_intent_is_deferred_by_field_presence() -> None:
    result = _normalize(_openapi("payment_intent"))  # no api_version, no `invoice` field
    assert [d.payment_intent for d in result.deferred] == ["pi_1PgafyB7WZ01zgkWSjxsAJo3"]


def test_stripe_fixture_openapi_subscription_and_refund_facts() -> None:
    sub = _facts(_normalize(_openapi("subscription")))
    assert sub == {
        ("customer.subscription.created", "sub:sub_1Pgc6rB7WZ01zgkWNy0Cn5nw:created"),
        ("customer.subscription.started", "sub:sub_1Pgc6rB7WZ01zgkWNy0Cn5nw:started"),
    }
    refund = _facts(_normalize(_openapi("refund")))
    assert refund == {("refund.succeeded", "refund:re_1Pgc72B7WZ01zgkWqPvrRrPE:succeeded")}
    draft = _normalize(_openapi("invoice"))
    assert draft.produces_nothing and "draft" in (draft.ignored_reason or "")
