"""bridge.blocklet without node: stable JSON, keys, component signatures, the PK event body.
(Parity with ArcBlock's JavaScript is proven in tests/interop/.)"""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from adapters.payment_kit import PaymentKitAdapter
from bridge.blocklet import (
    component_signed_text,
    generate_secret_key,
    parse_public_key,
    parse_secret_key,
    public_key_of,
    sign_component,
    stable_stringify,
    to_payment_kit_event,
    verify_component,
)
from bridge.errors import ConfigError, SignatureError
from bridge.events import Event

SK = generate_secret_key()
PK = public_key_of(SK)
BODY = {"type": "invoice.paid", "amount": 1.0, "name": "Zoë"}


def _sign(**kw: object) -> dict[str, str]:
    args: dict[str, object] = {
        "body": BODY,
        "method": "POST",
        "path": "/cb",
        "query": {"a": "1"},
        "secret_key": SK,
        "now": 1_700_000_000,
    }
    args.update(kw)
    return sign_component(**args)  # type: ignore[arg-type]


def _verify(headers: dict[str, str], **kw: object) -> None:
    args: dict[str, object] = {
        "body": BODY,
        "method": "post",
        "path": "/cb",
        "query": {"a": "1"},
        "public_key": PK,
        "now": 1_700_000_000,
    }
    args.update(kw)
    verify_component(headers, **args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (-0.0, "0"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (1.5e300, "1.5e+300"),
        (float("inf"), "null"),
        (2**53 + 1, "9007199254740992"),
        (12345678901234567890, "12345678901234567000"),
        ("a/b\u2028é", '"a/b\u2028é"'),
        ("\x00\x1f\x7f", '"\\u0000\\u001f\x7f"'),
        ("\ud800", '"\\ud800"'),
        ("\ud83d\ude00", '"\U0001f600"'),
        ({"b": 1, "a": [True, None]}, '{"a":[true,null],"b":1}'),
        ({"\uffff": 1, "\U0001f600": 2}, '{"\U0001f600":2,"\uffff":1}'),  # UTF-16 order
    ],
)
def test_stable_stringify_formats_like_javascript(value: object, text: str) -> None:
    assert stable_stringify(value) == text


def test_stable_stringify_refuses_non_json() -> None:
    with pytest.raises(TypeError):
        stable_stringify({"a": b"bytes"})
    with pytest.raises(TypeError):
        stable_stringify({1: "int key"})


def test_keys_round_trip_and_bad_keys_are_config_errors() -> None:
    assert isinstance(parse_public_key(PK), Ed25519PublicKey)
    seed_only = SK[:66]
    assert public_key_of(seed_only) == PK == public_key_of(parse_secret_key(SK))
    mismatched = SK[:66] + public_key_of(generate_secret_key())[2:]
    for bad in ("0xzz", "0x1234", mismatched):
        with pytest.raises(ConfigError):
            parse_secret_key(bad)
    with pytest.raises(ConfigError):
        parse_public_key(SK)


def test_sign_component_headers_and_signed_text() -> None:
    headers = _sign()
    assert headers["x-component-sig-iat"] == "1700000000"
    assert headers["x-component-sig-exp"] == "1700000300"
    assert headers["x-component-sig-version"] == "1"
    text = component_signed_text(
        iat=1_700_000_000, exp=1_700_000_300, body=BODY, method="POST", path="/cb", query={"a": "1"}
    )
    assert text == (
        '{"body":{"amount":1,"name":"Zoë","type":"invoice.paid"},"exp":1700000300,'
        '"iat":1700000000,"method":"post","query":{"a":"1"},"url":"/cb"}'
    )
    signature = bytes.fromhex(headers["x-component-sig"][2:])
    parse_public_key(PK).verify(signature, hashlib.sha3_256(text.encode()).digest())


def test_verify_component_accepts_until_exp_inclusive() -> None:
    headers = _sign()
    _verify(headers)
    _verify(headers, now=1_700_000_300.9)  # exp < floor(now) is the only expiry rule
    with pytest.raises(SignatureError, match="expired") as info:
        _verify(headers, now=1_700_000_301)
    assert info.value.status == 401


@pytest.mark.parametrize(
    "change",
    [
        {"body": {**BODY, "amount": 2}},
        {"method": "put"},
        {"path": "/other"},
        {"query": {}},
        {"public_key": public_key_of(generate_secret_key())},
    ],
)
def test_verify_component_rejects_any_change_with_401(change: dict[str, object]) -> None:
    with pytest.raises(SignatureError) as info:
        _verify(_sign(), **change)
    assert info.value.status == 401


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 400),
        ({"x-component-sig": ""}, 400),
        ({"x-component-sig-iat": "soon"}, 401),
        ({"x-component-sig-exp": ""}, 401),
        ({"x-component-sig": "0x" + "00" * 64}, 401),
        ({"x-component-sig": "abc"}, 401),
    ],
)
def test_verify_component_malformed_headers(headers: dict[str, str], status: int) -> None:
    signed = _sign()
    if headers:
        signed.update(headers)
    else:
        signed.pop("x-component-sig")
    with pytest.raises(SignatureError) as info:
        _verify(signed)
    assert info.value.status == status


def test_verify_component_reads_headers_case_insensitively_and_float_times() -> None:
    headers = {k.upper(): v for k, v in _sign().items()}
    _verify(headers)
    headers["X-COMPONENT-SIG-IAT"] = "1700000000.0"  # Number("1700000000.0") prints 1700000000
    _verify(headers)


def test_verify_component_retries_with_x_path_prefix() -> None:
    headers = _sign(path="/payment/cb")
    _verify({**headers, "x-path-prefix": "/payment"}, path="/cb")
    with pytest.raises(SignatureError):
        _verify(headers, path="/cb")


def test_sign_component_refuses_a_query_in_the_path() -> None:
    with pytest.raises(ValueError, match="query"):
        _sign(path="/cb?x=1")


def test_to_payment_kit_event_has_the_webhook_event_shape_and_parses_back() -> None:
    event = Event.make(
        type="customer.subscription.renewed",
        dedupe_key="invoice:in_1:renewed",
        source="stripe",
        source_event_id="evt_1",
        created=1_700_000_000,
        data_object={"id": "in_1"},
        object_type="invoice",
        object_id="in_1",
        api_version="2025-03-31.basil",
    )
    body = to_payment_kit_event(event)
    assert set(body) == {
        "id", "type", "livemode", "api_version", "object_type", "object_id", "data",
        "request", "pending_webhooks", "metadata", "created_at", "updated_at",
    }  # fmt: skip
    assert body["created_at"] == "2023-11-14T22:13:20.000Z"
    assert body["data"] == {"object": {"id": "in_1"}, "previous_attributes": {}}
    assert body["metadata"] == {"source": "stripe", "source_event_id": "evt_1"}
    parsed = PaymentKitAdapter(["whsec_x"]).parse(stable_stringify(body).encode())
    assert (parsed.shape, parsed.id, parsed.type) == ("event", event.id, event.type)
    assert parsed.created == event.created
