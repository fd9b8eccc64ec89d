"""StripeAdapter.verify and .parse: real signatures (stripe-python's signer), real bodies."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import stripe
from multidict import CIMultiDict

from adapters.base import InboundRequest
from adapters.stripe import MAX_JSON_DEPTH, StripeAdapter, snapshot_from_thin
from bridge.errors import PayloadError, SignatureError

OLD, NEW = "whsec_old_secret", "whsec_new_secret"
NOW = 1_760_000_000
BODY = orjson.dumps(
    {
        "id": "evt_1",
        "object": "event",
        "type": "customer.updated",
        "created": NOW,
        "api_version": "2025-03-31.basil",
        "livemode": True,
        "data": {"object": {"id": "cus_1", "object": "customer"}},
    }
)
THIN: dict[str, Any] = {
    "id": "evt_test_65R9Ijk",
    "object": "v2.core.event",
    "type": "v1.billing.meter.error_report_triggered",
    "created": "2024-09-17T06:20:52.246Z",
    "livemode": False,
    "related_object": {"id": "mtr_1", "type": "billing.meter", "url": "/v1/billing/meters/mtr_1"},
    "reason": None,
}


def _request(header: str | None, body: bytes = BODY, now: float = NOW) -> InboundRequest:
    headers: CIMultiDict[str] = CIMultiDict()
    if header is not None:
        headers["stripe-signature"] = header  # lower case: the lookup must be case-insensitive
    return InboundRequest("POST", "/webhooks/stripe", {}, headers, body, now)


def _sign(secret: str, body: bytes = BODY, timestamp: int = NOW) -> str:
    header: str = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp
    )
    return header


def _adapter(*secrets: str) -> StripeAdapter:
    return StripeAdapter(list(secrets or (NEW,)), tolerance_s=300)


def test_stripe_verify_accepts_a_signature_by_the_only_secret() -> None:
    _adapter(NEW).verify(_request(_sign(NEW)))


def test_stripe_verify_rotation_accepts_the_second_secret() -> None:
    _adapter(OLD, NEW).verify(_request(_sign(NEW)))
    _adapter(OLD, NEW).verify(_request(_sign(OLD)))


def test_stripe_verify_rejects_a_retired_secret() -> None:
    with pytest.raises(SignatureError):
        _adapter(NEW).verify(_request(_sign(OLD)))


def test_stripe_verify_accepts_when_any_v1_matches() -> None:
    good = _sign(NEW).split("v1=")[1]
    _adapter(NEW).verify(_request(f"t={NOW},v1={'0' * 64},v1={good}"))


@pytest.mark.parametrize("skew", [-301, 301, -86_400, 10**9])
def test_stripe_verify_rejects_stale_and_future_timestamps(skew: int) -> None:
    with pytest.raises(SignatureError):
        _adapter().verify(_request(_sign(NEW, timestamp=NOW + skew)))


@pytest.mark.parametrize("skew", [-300, 0, 300])
def test_stripe_verify_accepts_timestamps_within_tolerance(skew: int) -> None:
    _adapter().verify(_request(_sign(NEW, timestamp=NOW + skew)))


def test_stripe_verify_ignores_v0_signatures() -> None:
    v0 = _sign(NEW).split("v1=")[1]
    with pytest.raises(SignatureError):
        _adapter().verify(_request(f"t={NOW},v0={v0}"))


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "t=abc,v1=00", f"t={NOW}", "v1=abc", f"t={NOW},v1=zz,,", "t=,v1="],
)
def test_stripe_verify_rejects_missing_or_garbled_headers(header: str | None) -> None:
    with pytest.raises(SignatureError):
        _adapter().verify(_request(header))


def test_stripe_verify_rejects_a_signature_for_another_body() -> None:
    other = BODY.replace(b"cus_1", b"cus_2")
    with pytest.raises(SignatureError):
        _adapter().verify(_request(_sign(NEW, body=other)))


def test_stripe_verify_is_over_raw_bytes_not_reserialized_json() -> None:
    spaced = orjson.dumps(orjson.loads(BODY), option=orjson.OPT_INDENT_2)
    _adapter().verify(_request(_sign(NEW, body=spaced), body=spaced))
    with pytest.raises(SignatureError):
        _adapter().verify(_request(_sign(NEW, body=spaced), body=BODY))


@pytest.mark.parametrize("secrets", [[], [""], "whsec_single_string"])
def test_stripe_adapter_refuses_bad_secret_config(secrets: Any) -> None:
    with pytest.raises(ValueError):
        StripeAdapter(secrets)


def test_stripe_parse_reads_a_snapshot_event() -> None:
    event = _adapter().parse(BODY)
    assert (event.provider, event.id, event.type, event.created) == (
        "stripe",
        "evt_1",
        "customer.updated",
        NOW,
    )
    assert (event.api_version, event.livemode, event.shape) == (
        "2025-03-31.basil",
        True,
        "snapshot",
    )
    assert event.payload["data"]["object"]["id"] == "cus_1"


def _body(**changes: Any) -> bytes:
    payload = orjson.loads(BODY)
    for key, value in changes.items():
        if value is ...:
            del payload[key]
        else:
            payload[key] = value
    return orjson.dumps(payload)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe{}", "UTF-8 JSON"),
        (b"{not json", "UTF-8 JSON"),
        (b"", "UTF-8 JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'"evt"', "not a JSON object"),
        (_body(id=...), "'id'"),
        (_body(id=42), "'id'"),
        (_body(id=""), "'id'"),
        (_body(type=...), "'type'"),
        (_body(type=["invoice.paid"]), "'type'"),
        (_body(created="yesterday"), "'created'"),
        (_body(created=True), "'created'"),
        (_body(data=...), "data.object"),
        (_body(data={"object": "cus_1"}), "data.object"),
        (_body(data={"object": {}, "previous_attributes": []}), "previous_attributes"),
    ],
)
def test_stripe_parse_rejects_malformed_events(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        _adapter().parse(body)


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_100, 200_000])
def test_stripe_parse_rejects_deep_nesting_without_crashing(depth: int) -> None:
    deep = b'{"id":"evt_1","type":"x","created":1,"data":{"object":{"m":' + b"[" * depth
    deep += b"]" * depth + b"}}}"
    with pytest.raises(PayloadError, match=r"nested|JSON"):
        _adapter().parse(deep)


def test_stripe_parse_accepts_nesting_that_can_be_written_back() -> None:
    nested: Any = "leaf"
    for _ in range(MAX_JSON_DEPTH - 5):
        nested = [nested]
    body = _body(data={"object": {"id": "cus_1", "m": nested}})
    event = _adapter().parse(body)
    assert orjson.loads(orjson.dumps({"data": {"object": event.payload}})) is not None


def test_stripe_parse_recognizes_thin_events() -> None:
    event = _adapter().parse(orjson.dumps(THIN))
    assert (event.id, event.type, event.shape) == (THIN["id"], THIN["type"], "thin")
    assert event.created == 1_726_554_052
    result = _adapter().normalize(event)
    assert result.produces_nothing
    assert result.ignored_reason is not None and "thin event" in result.ignored_reason


@pytest.mark.parametrize(
    "change",
    [{"created": 5}, {"created": "not a date"}, {"id": None}, {"type": 3}],
)
def test_stripe_parse_rejects_malformed_thin_events(change: dict[str, Any]) -> None:
    with pytest.raises(PayloadError):
        _adapter().parse(orjson.dumps(THIN | change))


def test_stripe_snapshot_from_thin_normalizes_the_fetched_object() -> None:
    thin = _adapter().parse(orjson.dumps(THIN | {"type": "v1.customer.subscription.deleted"}))
    fetched = {"id": "sub_9", "object": "subscription", "status": "canceled"}
    snapshot = snapshot_from_thin(thin, fetched)
    assert (snapshot.type, snapshot.shape) == ("customer.subscription.deleted", "snapshot")
    facts = [(e.type, e.dedupe_key) for e in _adapter().normalize(snapshot).events]
    assert facts == [("customer.subscription.deleted", "sub:sub_9:deleted")]


def test_stripe_snapshot_from_thin_refuses_a_snapshot_event() -> None:
    with pytest.raises(PayloadError):
        snapshot_from_thin(_adapter().parse(BODY), {})


def test_stripe_normalize_ignores_types_without_a_rule() -> None:
    result = _adapter().normalize(_adapter().parse(BODY))
    assert result.produces_nothing
    assert result.ignored_reason == "no rule for customer.updated"


def test_stripe_parse_rejects_a_known_thin_type_without_its_related_object() -> None:
    body = {k: v for k, v in THIN.items() if k != "related_object"}
    body["type"] = "v1.billing.meter.error_report_triggered"
    with pytest.raises(PayloadError, match="thin event"):
        _adapter().parse(orjson.dumps(body))
