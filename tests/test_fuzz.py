"""Property-based fuzzing of the provider parsers and normalizers, and of the ingress.

Properties: ``parse`` raises nothing but :class:`PayloadError`; ``normalize`` never raises for an
event ``parse`` accepted, and every canonical event it makes can be serialized (the store writes
``Event.to_json()``); a correctly signed request never gets a 500. Inputs: arbitrary JSON, and
arbitrary mutations (dropped keys, values of another kind, huge numbers and strings) of real
Stripe events (the shared fixtures when present, and ``adapters.stripe_samples``)."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from adapters.base import Normalized, ProviderEvent
from adapters.payment_kit import PaymentKitAdapter
from adapters.stripe import StripeAdapter
from adapters.stripe_samples import SAMPLE_TYPES, sample_event
from bridge.errors import PayloadError
from bridge.service import Bridge
from bridge.signing import sign_timestamped_hmac
from tests.conftest import PK_SECRET, STRIPE_SECRET, BridgeFactory, stripe_headers

SHARED_STRIPE = Path("/work/shared/fixtures/stripe")
ADAPTER = StripeAdapter([STRIPE_SECRET])
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))

# Every Stripe type with a normalization rule, so that arbitrary objects reach the rules.
RULE_TYPES = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.trial_will_end",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.deleted",
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.payment_failed",
    "invoice.payment_action_required",
    "invoice_payment.paid",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "refund.created",
    "refund.updated",
    "charge.refund.updated",
    "charge.refunded",
]
# Stripe file names that hold only `event.data` (pay/): the event type each stands for.
IMPLIED_TYPES = {
    "subscription.trial_ended": "customer.subscription.updated",
    "subscription.trial_will_end": "customer.subscription.trial_will_end",
    "subscription.updated": "customer.subscription.updated",
}

# -- strategies -------------------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
# Values that broke (or could break) naive code: other kinds, extremes, Fraction-bait strings.
HOSTILE_VALUES: st.SearchStrategy[Any] = st.sampled_from(
    [
        None,
        [],
        {},
        "",
        0,
        -1,
        True,
        1.5,
        2**63 - 1,
        -(2**63),
        2**64 - 1,
        1e308,
        "x" * 10_000,
        "1/0",
        "1e99999999",
        "NaN",
        "\u0000",
        "paid",
        "subscription_cycle",
        {"id": None},
        {"id": 5},
        {"data": None},
        {"object": "list", "data": [None, 1, "x", {}]},
    ]
)
VALUES = HOSTILE_VALUES | JSON


def _sample_events() -> list[dict[str, Any]]:
    out = []
    for event_type in SAMPLE_TYPES:
        for api_version in ("2024-06-20", "2025-03-31.basil"):
            out.append(sample_event(event_type, api_version=api_version))
    return out


def _fixture_events() -> list[dict[str, Any]]:
    if not SHARED_STRIPE.is_dir():
        return []
    out = []
    for path in sorted(SHARED_STRIPE.glob("*/*.json")):
        if path.name == "fixtures3.json":
            continue
        doc = orjson.loads(path.read_bytes())
        if not isinstance(doc, dict):
            continue
        if doc.get("object") == "event":
            out.append(doc)
        elif isinstance(doc.get("object"), dict):  # pay/: event.data only
            event_type = IMPLIED_TYPES.get(path.stem, path.stem)
            out.append(
                {"id": f"evt_fx_{path.stem}", "object": "event", "type": event_type,
                 "created": 1_700_000_000, "data": doc, "livemode": False}
            )  # fmt: skip
    return out


BASE_EVENTS = _sample_events() + _fixture_events()


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path below ``node`` (dict keys and list indexes)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield (*prefix, i)
            yield from _paths(value, (*prefix, i))


def _apply(event: dict[str, Any], path: tuple[Any, ...], value: Any, drop: bool) -> None:
    parent: Any = event
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if drop and isinstance(parent, dict):
        parent.pop(last, None)
    elif drop and isinstance(parent, list):
        del parent[last]
    else:
        parent[last] = value


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A real event with 1–4 mutations: a key dropped or its value replaced."""
    event: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(BASE_EVENTS)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = list(_paths(event))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        # a copy: the sampled hostile values are shared objects, later mutations edit in place
        _apply(event, path, copy.deepcopy(draw(VALUES)), drop=draw(st.booleans()))
    return event


@st.composite
def rule_shaped_events(draw: st.DrawFn) -> dict[str, Any]:
    """A parseable event of a type with a rule, around an arbitrary object."""
    obj = draw(st.dictionaries(st.sampled_from(_OBJECT_KEYS), VALUES, max_size=8))
    data: dict[str, Any] = {"object": obj}
    if draw(st.booleans()):
        data["previous_attributes"] = draw(
            st.dictionaries(st.sampled_from(_OBJECT_KEYS), VALUES, max_size=4)
        )
    return {
        # well-formed: a non-empty id without NUL (which parse refuses)
        "id": draw(
            st.text(
                st.characters(exclude_characters="\x00", exclude_categories=["Cs"]),
                min_size=1,
                max_size=30,
            )
        ),
        "object": "event",
        "type": draw(st.sampled_from(RULE_TYPES)),
        "created": draw(st.integers(min_value=0, max_value=2**40)),
        "api_version": draw(st.sampled_from([None, "2024-06-20", "2025-03-31.basil", "", "x"])),
        "livemode": draw(VALUES),
        "data": data,
    }


# Field names the rules read, so that arbitrary values land where they matter.
_OBJECT_KEYS = [
    "id", "object", "status", "payment_status", "mode", "payment_intent", "invoice", "customer",
    "amount", "amount_total", "amount_paid", "amount_due", "amount_received", "currency",
    "billing_reason", "attempt_count", "items", "plan", "quantity", "cancel_at_period_end",
    "trial_start", "trial_end", "latest_invoice", "lines", "parent", "payments", "payment",
    "refunds", "subscription", "price",
]  # fmt: skip


# -- properties over the pure adapter ---------------------------------------------------------


def _check_normalized(event: ProviderEvent) -> Normalized:
    normalized = ADAPTER.normalize(event)
    assert isinstance(normalized, Normalized)
    for ev in [*normalized.events, *(e for d in normalized.deferred for e in d.events)]:
        assert ev.source_event_id == event.id
        assert orjson.loads(ev.to_json())["id"] == ev.id  # the store can write it
    if normalized.produces_nothing:
        assert normalized.ignored_reason
    return normalized


def _parse_or_payload_error(body: bytes) -> ProviderEvent | None:
    try:
        return ADAPTER.parse(body)
    except PayloadError as exc:
        assert str(exc)
        return None


@FUZZ
@given(JSON)
def test_fuzz_stripe_parse_arbitrary_json_raises_only_payload_error(value: Any) -> None:
    event = _parse_or_payload_error(orjson.dumps(value))
    if event is not None:
        _check_normalized(event)


@FUZZ
@given(st.binary(max_size=200))
def test_fuzz_stripe_parse_arbitrary_bytes_raises_only_payload_error(body: bytes) -> None:
    event = _parse_or_payload_error(body)
    if event is not None:
        _check_normalized(event)


@FUZZ
@given(rule_shaped_events())
def test_fuzz_stripe_normalize_rule_shaped_events_never_raises(payload: dict[str, Any]) -> None:
    event = _parse_or_payload_error(orjson.dumps(payload))
    assert event is not None  # always well-formed: id, type, created, data.object
    _check_normalized(event)


@settings(FUZZ, max_examples=150)
@given(mutated_events())
def test_fuzz_stripe_mutated_real_events_never_raise_unexpectedly(payload: dict[str, Any]) -> None:
    event = _parse_or_payload_error(orjson.dumps(payload))
    if event is not None:
        _check_normalized(event)


_THIN_KEYS = ["id", "type", "created", "livemode", "related_object", "reason", "context", "data"]
_THIN_VALUES = VALUES | st.sampled_from(
    ["evt_thin", "v1.invoice.paid", "2024-09-17T06:20:52.246Z",
     {"id": "in_1", "type": "invoice", "url": "/v1/invoices/in_1"}]
)  # fmt: skip


@FUZZ
@given(st.dictionaries(st.sampled_from(_THIN_KEYS), _THIN_VALUES, max_size=8))
def test_fuzz_stripe_thin_events_raise_only_payload_error(fields: dict[str, Any]) -> None:
    """stripe-python's thin-event parser is not total (a non-string ``context`` raised
    AttributeError, a 500): whatever it raises is a PayloadError."""
    event = _parse_or_payload_error(orjson.dumps({**fields, "object": "v2.core.event"}))
    if event is not None:
        assert event.shape == "thin"
        _check_normalized(event)


def test_fuzz_regression_thin_event_with_a_non_string_context() -> None:
    body = {"id": "evt_thin_ctx", "object": "v2.core.event", "type": "v1.invoice.paid",
            "created": "2024-09-17T06:20:52.246Z", "context": -1}  # fmt: skip
    assert _parse_or_payload_error(orjson.dumps(body)) is None


@pytest.mark.parametrize("decimal", ["1/0", "1e99999999", "-0/0", "1_000", "１２"])
def test_fuzz_regression_unit_amount_decimal_is_not_evaluated(decimal: str) -> None:
    """Found by this fuzzing: ``Fraction("1/0")`` raised ZeroDivisionError (a 500 at ingress)
    and ``Fraction("1e99999999")`` stalled the event loop building a huge integer."""
    event = sample_event("customer.subscription.updated")
    item = event["data"]["object"]["items"]["data"][0]
    old_price = {**item["price"], "unit_amount_decimal": decimal}
    event["data"]["previous_attributes"] = {
        "items": {"object": "list", "data": [{"price": old_price, "quantity": 1}]}
    }
    started = time.monotonic()
    normalized = _check_normalized(ADAPTER.parse(orjson.dumps(event)))
    assert time.monotonic() - started < 5, "normalization must not do unbounded arithmetic"
    assert [e.type for e in normalized.events] == ["customer.subscription.updated"]


# -- Payment Kit --------------------------------------------------------------------------------

PK_ADAPTER = PaymentKitAdapter(["pk_fuzz_secret_0123456789"])


def _check_payment_kit(body: bytes) -> None:
    """``body`` is refused with a PayloadError, or normalizes into events the store can write."""
    try:
        event = PK_ADAPTER.parse(body)
    except PayloadError:
        return
    normalized = PK_ADAPTER.normalize(event)
    assert isinstance(normalized, Normalized)
    for ev in normalized.events:
        ev.to_json()


@FUZZ
@given(JSON)
def test_fuzz_payment_kit_parse_arbitrary_json_raises_only_payload_error(value: Any) -> None:
    _check_payment_kit(orjson.dumps(value))


@st.composite
def payment_kit_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """Payment Kit webhook events, EventBus envelopes and Blocklet Server bodies with arbitrary
    values in their fields."""
    obj = draw(st.dictionaries(st.sampled_from(_OBJECT_KEYS), VALUES, max_size=6))
    event_type = draw(st.sampled_from(["invoice.paid", "payment_intent.succeeded",
                                       "customer.subscription.started", "x.unknown"]))  # fmt: skip
    shape = draw(st.sampled_from(["webhook", "eventbus", "blocklet"]))
    if shape == "blocklet":
        body: dict[str, Any] = {"$eventName": event_type, "$sender": draw(VALUES), "object": obj}
    else:
        body = {"id": draw(VALUES | st.just("evt_pk1")), "type": event_type,
                "data": {"object": obj, "previous_attributes": draw(VALUES)}}  # fmt: skip
        body["created_at" if shape == "webhook" else "time"] = draw(VALUES)
    for key in draw(st.lists(st.sampled_from(["object_type", "object_id", "livemode"]))):
        body[key] = draw(VALUES)
    return body


@FUZZ
@given(payment_kit_bodies())
def test_fuzz_payment_kit_shaped_bodies_raise_only_payload_error(body: dict[str, Any]) -> None:
    _check_payment_kit(orjson.dumps(body))


# -- through the service ------------------------------------------------------------------------


async def _post_signed(client: Any, body: bytes) -> int:
    resp = await client.post("/webhooks/stripe", data=body, headers=stripe_headers(body))
    data = await resp.json()
    if resp.status != 200:
        assert data["error"]["type"] == "invalid_payload", data
    return int(resp.status)


class _Service:
    """One bridge shared by all examples of a test (hypothesis reruns the body, not fixtures)."""

    bridge: Bridge
    client: Any


@pytest.fixture
async def service(make_bridge: BridgeFactory) -> _Service:
    svc = _Service()
    svc.bridge, svc.client = await make_bridge()
    return svc


@settings(FUZZ, max_examples=80)
@given(payload=mutated_events() | rule_shaped_events())
async def test_fuzz_service_signed_mutations_never_answer_500(
    service: _Service, payload: dict[str, Any]
) -> None:
    body = orjson.dumps(payload)
    status = await _post_signed(service.client, body)
    assert status in (200, 400)
    if status == 200:  # a replay of the same body is a clean no-op
        resp = await service.client.post(
            "/webhooks/stripe", data=body, headers=stripe_headers(body)
        )
        assert resp.status == 200 and (await resp.json())["duplicate"] is True


@example(created=2**63 - 1)
@example(created=2**63)
@example(created=2**64 - 1)
@example(created=0)
@settings(FUZZ, max_examples=10)
@given(created=st.integers(min_value=0, max_value=2**64 - 1))
async def test_fuzz_service_extreme_created_never_answers_500(
    service: _Service, created: int
) -> None:
    """``created`` is stored in a 64-bit signed column: out-of-range values are refused as a
    bad payload (400), not a store failure (503) that Stripe would retry for days."""
    event = sample_event("customer.subscription.created")
    event["created"] = created
    status = await _post_signed(service.client, orjson.dumps(event))
    assert status == (200 if created < 2**63 else 400)


@pytest.mark.parametrize("field", ["id", "type"])
async def test_fuzz_service_nul_in_id_or_type_is_400(service: _Service, field: str) -> None:
    """PostgreSQL TEXT columns refuse NUL: it is refused at parse time on every store."""
    event = sample_event("customer.subscription.created")
    event[field] = event[field] + "\u0000x"
    assert await _post_signed(service.client, orjson.dumps(event)) == 400
    assert (await service.bridge.store.counts())["inbox"] == 0


# -- Payment Kit through the service ----------------------------------------------------------


PK_YAML = f'sources: {{{{payment_kit: {{{{signing_secrets: ["{PK_SECRET}"]}}}}}}}}'


@pytest.fixture
async def pk_service(make_bridge: BridgeFactory) -> _Service:
    svc = _Service()
    svc.bridge, svc.client = await make_bridge(PK_YAML)
    return svc


async def _post_pk(client: Any, body: bytes) -> int:
    header = sign_timestamped_hmac(body, [PK_SECRET], int(time.time()))
    resp = await client.post(
        "/webhooks/payment-kit",
        data=body,
        headers={"X-Webhook-Signature": header, "Content-Type": "application/json"},
    )
    data = await resp.json()
    if resp.status != 200:
        assert data["error"]["type"] == "invalid_payload", data
    return int(resp.status)


def _pk_event(**changes: Any) -> dict[str, Any]:
    obj = {"id": "in_pk_fuzz", "object": "invoice", "status": "paid", "amount_paid": "100"}
    event: dict[str, Any] = {
        "id": "evt_pk_fuzz",
        "object": "event",
        "type": "invoice.paid",
        "created_at": "2026-01-01T00:00:00.000Z",
        "livemode": False,
        "data": {"object": obj},
    }
    event.update(changes)
    return event


@settings(FUZZ, max_examples=60)
@given(body=payment_kit_bodies())
async def test_fuzz_service_signed_payment_kit_bodies_never_answer_500(
    pk_service: _Service, body: dict[str, Any]
) -> None:
    assert await _post_pk(pk_service.client, orjson.dumps(body)) in (200, 400)


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"created_at": 1e308}, id="created-1e308"),
        pytest.param({"created_at": 2**64 - 1}, id="created-u64-max"),
        pytest.param({"created_at": -(2**63)}, id="created-i64-min"),
        pytest.param({"created_at": "0001-01-01T00:00:00+14:00"}, id="created-year-1"),
        pytest.param({"id": "evt_pk\u0000"}, id="nul-in-id"),
        pytest.param(
            {"data": {"object": {"id": "in_x", "status": "paid", "amount_paid": "1" * 5000}}},
            id="amount-5000-digits",
        ),
        pytest.param({"data": {"object": {"id": "in_x", "deep": "DEEP"}}}, id="nested-600-levels"),
    ],
)
async def test_fuzz_service_payment_kit_extremes_never_answer_500(
    pk_service: _Service, changes: dict[str, Any]
) -> None:
    """Each was a 500 (or a PostgreSQL commit failure) with the first Payment Kit adapter."""
    # orjson.dumps refuses depth > 254: splice the deep value in as text
    body = orjson.dumps(_pk_event(**changes)).replace(b'"DEEP"', b'{"a":' * 600 + b"1" + b"}" * 600)
    status = await _post_pk(pk_service.client, body)
    assert status in (200, 400)
