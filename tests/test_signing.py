"""Tests for bridge.signing against the real stripe and standardwebhooks libraries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path

import pytest
import stripe
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bridge.errors import SignatureError
from bridge.signing import (
    generate_endpoint_secret,
    hmac_sha256,
    parse_signature_header,
    sign_timestamped_hmac,
    standard_webhook_headers,
    stripe_scheme_headers,
    verify_timestamped_hmac,
)

SECRET = "whsec_test_secret_one"
OTHER_SECRET = "whsec_test_secret_two"
BODY = b'{"id": "evt_1", "object": "event",\n "type": "charge.succeeded"}'
T0 = 1_700_000_000
FIXTURE = Path("/work/shared/fixtures/stripe/stripe-ruby-mock/charge.succeeded.json")


def _verify(header: str | None, secrets: list[str], now: float = T0, body: bytes = BODY) -> int:
    return verify_timestamped_hmac(body, header, secrets, tolerance_s=300, now=now)


def test_parse_signature_header_returns_timestamp_and_v1_list() -> None:
    assert parse_signature_header("t=12,v1=aa,v0=bb,v1=cc,foo=bar") == (12, ["aa", "cc"])


def test_parse_signature_header_tolerates_spaces_and_trailing_comma() -> None:
    assert parse_signature_header(" t=5 , v1=ab ,") == (5, ["ab"])


@pytest.mark.parametrize(
    "header",
    [
        "v1=aa",  # no t
        "t=1,t=2,v1=aa",  # duplicated t
        "t=,v1=aa",  # empty t
        "t=abc,v1=aa",  # non-integer t
        "t=-5,v1=aa",  # negative t
        "t=+5,v1=aa",  # int() would accept it
        "t=1_0,v1=aa",  # int() would accept it
        "t=١٢,v1=aa",  # non-ASCII digits
        "t=1,v0=aa",  # v0 only
        "t=1",  # no signature
        "t=1,garbage,v1=aa",  # item without "="
        "",
    ],
)
def test_parse_signature_header_rejects_malformed(header: str) -> None:
    with pytest.raises(SignatureError):
        parse_signature_header(header)


def test_verify_timestamped_hmac_accepts_own_signature() -> None:
    header = sign_timestamped_hmac(BODY, [SECRET], T0)
    assert _verify(header, [SECRET]) == T0


def test_verify_timestamped_hmac_accepts_stripe_generated_header() -> None:
    payload = BODY.decode()
    header = stripe.WebhookSignature.generate_signature_header(payload, SECRET, timestamp=T0)
    assert _verify(header, [SECRET]) == T0


def test_verify_timestamped_hmac_accepts_real_fixture_raw_bytes() -> None:
    if not FIXTURE.exists():
        pytest.skip("shared Stripe fixtures are not present")
    body = FIXTURE.read_bytes()
    header = stripe.WebhookSignature.generate_signature_header(body.decode(), SECRET, T0)
    assert _verify(header, [SECRET], body=body) == T0
    # Re-serializing the JSON changes the bytes and so must break the signature.
    reserialized = body.replace(b"\n", b"") if b"\n" in body else body + b" "
    with pytest.raises(SignatureError):
        _verify(header, [SECRET], body=reserialized)


def test_sign_timestamped_hmac_is_accepted_by_stripe_verify_header() -> None:
    now = int(time.time())
    header = sign_timestamped_hmac(BODY, [SECRET], now)
    assert stripe.WebhookSignature.verify_header(BODY, header, SECRET, tolerance=300) is True


def test_sign_timestamped_hmac_rotation_each_secret_verifies_with_stripe() -> None:
    now = int(time.time())
    header = sign_timestamped_hmac(BODY, [SECRET, OTHER_SECRET], now)
    assert header.count("v1=") == 2
    for secret in (SECRET, OTHER_SECRET):
        assert stripe.WebhookSignature.verify_header(BODY, header, secret, tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(BODY, header, "whsec_unrelated", tolerance=300)


def test_verify_timestamped_hmac_any_secret_matches_any_signature() -> None:
    header = sign_timestamped_hmac(BODY, [OTHER_SECRET], T0)
    assert _verify(header, [SECRET, OTHER_SECRET]) == T0


def test_verify_timestamped_hmac_rejects_wrong_secret() -> None:
    header = sign_timestamped_hmac(BODY, [OTHER_SECRET], T0)
    with pytest.raises(SignatureError, match="no signature matches"):
        _verify(header, [SECRET])


def test_verify_timestamped_hmac_rejects_tampered_body() -> None:
    header = sign_timestamped_hmac(BODY, [SECRET], T0)
    with pytest.raises(SignatureError):
        _verify(header, [SECRET], body=BODY + b" ")


def test_verify_timestamped_hmac_rejects_non_ascii_signature_without_crashing() -> None:
    with pytest.raises(SignatureError, match="no signature matches"):
        _verify(f"t={T0},v1=ünïcode", [SECRET])


@pytest.mark.parametrize("header", [None, ""])
def test_verify_timestamped_hmac_rejects_missing_header(header: str | None) -> None:
    with pytest.raises(SignatureError, match="missing"):
        _verify(header, [SECRET])


@pytest.mark.parametrize("offset_s", [-301, 301])
def test_verify_timestamped_hmac_rejects_timestamp_outside_tolerance(offset_s: int) -> None:
    header = sign_timestamped_hmac(BODY, [SECRET], T0 + offset_s)
    with pytest.raises(SignatureError, match="tolerance"):
        _verify(header, [SECRET])


@pytest.mark.parametrize("offset_s", [-300, 300])
def test_verify_timestamped_hmac_accepts_timestamp_at_tolerance_edge(offset_s: int) -> None:
    header = sign_timestamped_hmac(BODY, [SECRET], T0 + offset_s)
    assert _verify(header, [SECRET]) == T0 + offset_s


def test_verify_timestamped_hmac_errors_never_leak_secret_or_expected_signature() -> None:
    expected_hex = sign_timestamped_hmac(BODY, [SECRET], T0).split("v1=")[1]
    bad_headers = [f"t={T0},v1=00", f"t={T0 - 10_000},v1={expected_hex}", None, "t=x,v1=1"]
    for header in bad_headers:
        with pytest.raises(SignatureError) as info:
            _verify(header, [SECRET])
        message = str(info.value)
        assert SECRET not in message
        assert expected_hex not in message


def test_verify_timestamped_hmac_requires_secrets() -> None:
    header = sign_timestamped_hmac(BODY, [SECRET], T0)
    with pytest.raises(ValueError):
        _verify(header, [])
    with pytest.raises(TypeError):
        verify_timestamped_hmac(BODY, header, SECRET, tolerance_s=300, now=T0)


def test_sign_timestamped_hmac_rejects_empty_secret() -> None:
    with pytest.raises(ValueError):
        sign_timestamped_hmac(BODY, [""], T0)


def test_stripe_scheme_headers_uses_x_webhook_signature() -> None:
    headers = stripe_scheme_headers(T0, BODY, [SECRET])
    assert list(headers) == ["X-Webhook-Signature"]
    assert _verify(headers["X-Webhook-Signature"], [SECRET]) == T0


def test_generate_endpoint_secret_is_whsec_base64_of_32_bytes() -> None:
    secret = generate_endpoint_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert generate_endpoint_secret() != secret


def test_standard_webhook_headers_matches_published_test_vector() -> None:
    # Vector from the Standard Webhooks / Svix reference test suites.
    headers = standard_webhook_headers(
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
        ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    )
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


def test_standard_webhook_headers_verify_with_standardwebhooks_library() -> None:
    secret = generate_endpoint_secret()
    headers = standard_webhook_headers("msg_1", int(time.time()), BODY, [secret])
    assert Webhook(secret).verify(BODY, headers) == {
        "id": "evt_1",
        "object": "event",
        "type": "charge.succeeded",
    }


def test_standard_webhook_headers_rotation_verifies_with_either_secret() -> None:
    old, new = generate_endpoint_secret(), generate_endpoint_secret()
    headers = standard_webhook_headers("msg_2", int(time.time()), BODY, [old, new])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(BODY, headers, json_parse=False)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_endpoint_secret()).verify(BODY, headers, json_parse=False)


def test_standard_webhook_headers_accepts_unpadded_secret() -> None:
    key = bytes(range(20))  # 20 bytes -> base64 with one "=" of padding
    padded = "whsec_" + base64.b64encode(key).decode()
    unpadded = padded.rstrip("=")
    assert padded != unpadded
    a = standard_webhook_headers("m", T0, BODY, [padded])
    b = standard_webhook_headers("m", T0, BODY, [unpadded])
    assert a == b


@pytest.mark.parametrize(
    "secret",
    ["no_prefix_c2VjcmV0", "whsec_", "whsec_not*base64!", "whsec_a"],
)
def test_standard_webhook_headers_rejects_malformed_secret(secret: str) -> None:
    with pytest.raises(ValueError) as info:
        standard_webhook_headers("m", T0, BODY, [secret])
    assert secret not in str(info.value)


@pytest.mark.parametrize("size", [0, 1, 1999, 2000, 2001, 2047, 2048, 4000, 4001, 100_000])
def test_signing_hmac_in_pieces_equals_one_call(size: int) -> None:
    """The GIL-keeping HMAC (fed in pieces under hashlib's 2,048-byte release threshold) is the
    same MAC as one call over the whole message, at and around every piece boundary."""
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    key = b"k" * 32
    assert hmac_sha256(key, data).digest() == hmac.new(key, data, hashlib.sha256).digest()
