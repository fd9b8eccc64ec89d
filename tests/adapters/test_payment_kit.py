"""adapters.payment_kit: the three shapes, normalization, both signature schemes, and the
catalog against @blocklet/payment-types' own event list (fixture extracted from npm)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from adapters.base import Adapter, InboundRequest, Link
from adapters.payment_kit import PaymentKitAdapter
from bridge.blocklet import generate_secret_key, public_key_of, sign_component
from bridge.catalog import CATALOG
from bridge.errors import ConfigError, PayloadError, SignatureError
from bridge.events import event_id_for
from bridge.signing import sign_timestamped_hmac

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "payment_kit"
SECRET = "whsec_payment_kit_test"
NOW = 1_740_000_000.0
SK = generate_secret_key()


def _raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _adapter(**kw: Any) -> PaymentKitAdapter:
    return PaymentKitAdapter([SECRET], app_public_key=public_key_of(SK), **kw)


def _request(
    body: bytes, headers: dict[str, str], *, path: str = "/webhooks/payment-kit"
) -> InboundRequest:
    return InboundRequest(
        method="POST",
        path=path,
        query={},
        headers=CIMultiDict(headers),
        body=body,
        received_at=NOW,
    )


def _component_headers(body: bytes, *, now: float = NOW, sk: str = SK) -> dict[str, str]:
    return sign_component(
        body=json.loads(body),
        method="POST",
        path="/webhooks/payment-kit",
        query={},
        secret_key=sk,
        now=int(now),
    )


# --- parse ---------------------------------------------------------------------------------


def test_payment_kit_adapter_satisfies_the_adapter_protocol() -> None:
    adapter: Adapter = _adapter()
    assert adapter.name == "payment_kit"


def test_parse_webhook_event_shape() -> None:
    event = _adapter().parse(_raw("invoice_paid.event.json"))
    assert (event.shape, event.id, event.type) == (
        "event",
        "evt_Qm9vYmFyQmF6UXV4MTIz",
        "invoice.paid",
    )
    assert event.created == 1732240022  # 2024-11-22T01:47:02.456Z
    assert event.api_version == "2023-09-05"
    assert event.livemode is False


def test_parse_eventbus_envelope_shape() -> None:
    event = _adapter().parse(_raw("subscription_renewed.eventbus.json"))
    assert (event.shape, event.id) == ("eventbus", "evt_T2UiJ2VHUxVo3J6BuULkrp15")
    assert event.type == "customer.subscription.renewed"
    assert event.created == 1739936802  # time 2025-02-19T03:46:42.662Z
    assert event.livemode is True  # from the object: the envelope has none


def test_parse_blocklet_server_webhook_shape_ids_by_body_hash() -> None:
    raw = _raw("subscription_started.webhook.json")
    event = _adapter().parse(raw)
    digest = hashlib.sha256(raw).hexdigest()
    assert (event.shape, event.type) == ("webhook", "customer.subscription.started")
    assert event.id == f"sha256:{digest}"
    assert event.created == 1739936803  # object.updated_at


def test_normalize_webhook_shape_dedupes_on_body_hash() -> None:
    raw = _raw("subscription_started.webhook.json")
    adapter = _adapter()
    [event] = adapter.normalize(adapter.parse(raw)).events
    digest = hashlib.sha256(raw).hexdigest()
    assert event.dedupe_key == f"payment_kit:sha256:{digest}"
    assert event.id == event_id_for(event.type, f"payment_kit:sha256:{digest}")
    assert (event.object_type, event.object_id) == ("Subscription", "sub_3mZb1hB9kQ2w")
    assert event.data["object"]["status"] == "trialing"
    # Other bytes (even the same JSON reformatted) are another delivery, another id.
    again = adapter.parse(orjson.dumps(json.loads(raw)))
    assert again.id != f"sha256:{digest}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"id": "evt_1", "type": "invoice.paid", "data": {"object": {}}}', "no shape"),
        (
            b'{"id": "evt_1", "type": "x", "created_at": "2025-01-01T00:00:00Z",'
            b' "time": "2025-01-01T00:00:00Z", "data": {"object": {}}}',
            "event and eventbus",
        ),
        (
            b'{"id": 7, "type": "invoice.paid", "created_at": "2025-01-01",'
            b' "data": {"object": {}}}',
            "id",
        ),
        (b'{"id": "evt_1", "type": 3, "created_at": "2025-01-01", "data": {"object": {}}}', "type"),
        (
            b'{"id": "evt_1", "type": "invoice.paid", "created_at": "2025-01-01", "data": {}}',
            "data.object",
        ),
        (
            b'{"id": "evt_1", "type": "a.b", "created_at": "2025-01-01", "data": {"object": []}}',
            "data.object",
        ),
        (
            b'{"id": "evt_1", "type": "a.b", "created_at": "yesterday", "data": {"object": {}}}',
            "ISO",
        ),
        (b'{"$eventName": "a.b", "$sender": {}, "object": "x"}', "object"),
        (b'{"$eventName": "", "object": {}}', "type"),
        (
            b'{"object": "event", "id": "evt_1", "type": "invoice.paid", "created": 1,'
            b' "data": {"object": {}}}',
            "no shape",
        ),
    ],
)
def test_parse_rejects_malformed_bodies(body: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        _adapter().parse(body)


# --- normalize -----------------------------------------------------------------------------


def test_normalize_invoice_paid_passes_through_and_derives_payment_succeeded() -> None:
    adapter = _adapter()
    out = adapter.normalize(adapter.parse(_raw("invoice_paid.event.json")))
    paid, payment = out.events
    assert paid.type == "invoice.paid"
    assert paid.dedupe_key == "payment_kit:evt_Qm9vYmFyQmF6UXV4MTIz"
    assert paid.source == "payment_kit" and paid.source_event_id == "evt_Qm9vYmFyQmF6UXV4MTIz"
    assert paid.data["previous_attributes"] == {"status": "open", "paid": False}
    assert paid.request["requested_by"] == "system"
    assert payment.type == "payment.succeeded"
    assert payment.dedupe_key == "payment:in_2nFh7Jc1qYkTqk3v9TqS8Zsm"
    summary = payment.data["object"]
    assert summary["kind"] == "subscription"
    assert summary["amount"] == "10000000000000000000"
    assert summary["currency"] == "pc_x7eaK0bXZ3tL"
    assert summary["customer"] == "cus_9Wm2dD3hR0pQ"
    assert summary["products"] == ["prod_pro"]
    assert summary["payment_intent"] == "pi_4yQv3mS8e2Kd"
    assert summary["source_object"]["id"] == "in_2nFh7Jc1qYkTqk3v9TqS8Zsm"
    assert out.links == [Link("pi_4yQv3mS8e2Kd", "in_2nFh7Jc1qYkTqk3v9TqS8Zsm")]


def _with_object(name: str, **changes: Any) -> bytes:
    body = json.loads(_raw(name))
    body["data"]["object"].update(changes)
    return orjson.dumps(body)


def test_normalize_zero_amount_invoice_is_not_a_payment() -> None:
    adapter = _adapter()
    out = adapter.normalize(adapter.parse(_with_object("invoice_paid.event.json", amount_paid="0")))
    assert [e.type for e in out.events] == ["invoice.paid"]


def test_normalize_standalone_payment_intent_derives_payment_succeeded() -> None:
    adapter = _adapter()
    out = adapter.normalize(adapter.parse(_raw("payment_intent_succeeded.event.json")))
    assert [e.type for e in out.events] == ["payment_intent.succeeded", "payment.succeeded"]
    summary = out.events[1].data["object"]
    assert (summary["kind"], summary["amount"], summary["invoice"]) == ("one_time", "4990", None)
    assert out.events[1].dedupe_key == "payment:pi_7dWq0rT5uY1z"
    assert out.events[0].livemode is True


def test_normalize_payment_intent_of_an_invoice_only_links() -> None:
    adapter = _adapter()
    body = _with_object("payment_intent_succeeded.event.json", invoice_id="in_9")
    out = adapter.normalize(adapter.parse(body))
    assert out.events == []
    assert out.links == [Link("pi_7dWq0rT5uY1z", "in_9")]


def test_normalize_eventbus_passthrough_keeps_type_and_object() -> None:
    adapter = _adapter()
    [event] = adapter.normalize(adapter.parse(_raw("subscription_renewed.eventbus.json"))).events
    assert event.type == "customer.subscription.renewed"
    assert (event.object_type, event.object_id) == ("Subscription", "sub_hmL7FQTmMbYVELkH6uVo6m9P")
    assert event.created == 1739936802
    assert event.data["previous_attributes"] == {"current_period_start": 1737258402}


def test_normalize_unknown_type_is_ignored_with_a_reason() -> None:
    adapter = _adapter()
    body = json.loads(_raw("invoice_paid.event.json"))
    body["type"] = "charge.dispute.created"
    out = adapter.normalize(adapter.parse(orjson.dumps(body)))
    assert out.produces_nothing
    assert out.ignored_reason is not None and "charge.dispute.created" in out.ignored_reason


def test_normalize_refuses_provider_sent_payment_succeeded() -> None:
    adapter = _adapter()
    body = json.loads(_raw("invoice_paid.event.json"))
    body["type"] = "payment.succeeded"
    out = adapter.normalize(adapter.parse(orjson.dumps(body)))
    assert out.produces_nothing and out.ignored_reason is not None


# --- verify --------------------------------------------------------------------------------


def test_verify_accepts_x_webhook_signature() -> None:
    raw = _raw("subscription_started.webhook.json")
    header = sign_timestamped_hmac(raw, [SECRET], int(NOW))
    _adapter().verify(_request(raw, {"X-Webhook-Signature": header}))


def test_verify_rejects_forged_x_webhook_signature() -> None:
    raw = _raw("subscription_started.webhook.json")
    header = sign_timestamped_hmac(raw, ["whsec_someone_else"], int(NOW))
    with pytest.raises(SignatureError):
        _adapter().verify(_request(raw, {"X-Webhook-Signature": header}))


def test_verify_rejects_stale_x_webhook_signature() -> None:
    raw = _raw("subscription_started.webhook.json")
    header = sign_timestamped_hmac(raw, [SECRET], int(NOW) - 301)
    with pytest.raises(SignatureError, match="tolerance"):
        _adapter().verify(_request(raw, {"X-Webhook-Signature": header}))


def test_verify_accepts_component_signature() -> None:
    raw = _raw("invoice_paid.event.json")
    _adapter().verify(_request(raw, _component_headers(raw)))


def test_verify_component_signature_over_a_tampered_body_is_401() -> None:
    raw = _raw("invoice_paid.event.json")
    headers = _component_headers(raw)
    tampered = raw.replace(b'"amount_paid": "1', b'"amount_paid": "9')
    with pytest.raises(SignatureError) as info:
        _adapter().verify(_request(tampered, headers))
    assert info.value.status == 401


def test_verify_component_signature_of_another_key_is_401() -> None:
    raw = _raw("invoice_paid.event.json")
    with pytest.raises(SignatureError) as info:
        _adapter().verify(_request(raw, _component_headers(raw, sk=generate_secret_key())))
    assert info.value.status == 401


def test_verify_expired_component_signature_is_401() -> None:
    raw = _raw("invoice_paid.event.json")
    headers = _component_headers(raw, now=NOW - 301)  # exp = NOW - 1
    with pytest.raises(SignatureError, match="expired") as info:
        _adapter().verify(_request(raw, headers))
    assert info.value.status == 401


def test_verify_missing_signature_is_400() -> None:
    with pytest.raises(SignatureError, match="missing") as info:
        _adapter().verify(_request(_raw("invoice_paid.event.json"), {}))
    assert info.value.status == 400


def test_verify_either_scheme_is_enough_when_both_are_configured() -> None:
    raw = _raw("invoice_paid.event.json")
    bad_hmac = sign_timestamped_hmac(raw, ["whsec_wrong"], int(NOW))
    headers = {**_component_headers(raw), "X-Webhook-Signature": bad_hmac}
    _adapter().verify(_request(raw, headers))


def test_verify_both_schemes_failing_is_401() -> None:
    raw = _raw("invoice_paid.event.json")
    bad_hmac = sign_timestamped_hmac(raw, ["whsec_wrong"], int(NOW))
    headers = {**_component_headers(raw, sk=generate_secret_key()), "X-Webhook-Signature": bad_hmac}
    with pytest.raises(SignatureError) as info:
        _adapter().verify(_request(raw, headers))
    assert info.value.status == 401


def test_verify_component_header_without_a_configured_key_is_missing() -> None:
    raw = _raw("invoice_paid.event.json")
    adapter = PaymentKitAdapter([SECRET])
    with pytest.raises(SignatureError, match="X-Webhook-Signature") as info:
        adapter.verify(_request(raw, _component_headers(raw)))
    assert info.value.status == 400


def test_adapter_without_any_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"sources\.payment_kit"):
        PaymentKitAdapter()
    with pytest.raises(ConfigError):
        PaymentKitAdapter(app_public_key="0x1234")


# --- catalog vs. the npm package -----------------------------------------------------------


def test_catalog_holds_every_payment_kit_event_type_of_the_npm_package() -> None:
    spec = json.loads((FIXTURES / "event_types.json").read_text())
    assert spec["package"] == "@blocklet/payment-types" and spec["version"]
    excluded = tuple(spec["excluded_families"])
    types = spec["event_type"] + spec["notification_action_events"]
    missing = [t for t in types if t not in CATALOG and not t.startswith(excluded)]
    assert missing == []
    # Exclusions are real families of the package and none of them leaks into the catalog.
    assert all(any(t.startswith(f) for t in types) for f in excluded)
    assert [t for t in CATALOG if t.startswith(excluded)] == []


@pytest.mark.parametrize(
    "changes",
    [
        {"created_at": 1e308},
        {"created_at": 2**64 - 1},
        {"created_at": "0001-01-01T00:00:00+14:00"},
        {"id": "evt_\u0000x"},
        {"type": "invoice.paid\u0000"},
    ],
)
def test_parse_rejects_out_of_range_times_and_nul(changes: dict[str, Any]) -> None:
    body = json.loads(_raw("invoice_paid.event.json"))
    body.update(changes)
    with pytest.raises(PayloadError):
        _adapter().parse(orjson.dumps(body))


def test_parse_rejects_deep_nesting_and_survives_huge_amounts() -> None:
    deep = b'{"id":"evt_1","type":"a.b","created_at":"2025-01-01","data":{"object":{"d":'
    deep += b'{"a":' * 300 + b"1" + b"}" * 300 + b"}}}"
    with pytest.raises(PayloadError, match="deeper"):
        _adapter().parse(deep)
    adapter = _adapter()
    huge = _with_object("invoice_paid.event.json", amount_paid="1" * 5000)
    out = adapter.normalize(adapter.parse(huge))
    assert out.events[1].data["object"]["amount"] == "1" * 5000
