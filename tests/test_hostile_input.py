"""Hostile input corpus: every request an attacker (or a broken proxy) can send to the ingress and
the admin API gets a clear status and changes nothing in the store.

Each test posts through the real aiohttp app to a real SQLite store and compares
``store.counts()`` before and after."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from bridge.service import Bridge
from bridge.signing import sign_timestamped_hmac
from tests.conftest import (
    ADMIN_KEY,
    PK_SECRET,
    STRIPE_SECRET,
    BridgeFactory,
    admin_headers,
    stripe_event,
    stripe_headers,
)

SUB = {"id": "sub_hostile1", "object": "subscription", "customer": "cus_hostile",
       "status": "active", "items": {"object": "list", "data": []}}  # fmt: skip


def _body() -> bytes:
    return orjson.dumps(stripe_event("customer.subscription.created", SUB))


async def _counts(bridge: Bridge) -> dict[str, int]:
    return await bridge.store.counts()


async def _post(
    client: TestClient[Any, Any], body: bytes | Any, headers: dict[str, str]
) -> tuple[int, Any]:
    resp = await client.post("/webhooks/stripe", data=body, headers=headers)
    text = await resp.text()
    try:
        return resp.status, orjson.loads(text)
    except orjson.JSONDecodeError:
        return resp.status, text


async def _assert_rejected(
    bridge: Bridge,
    client: TestClient[Any, Any],
    body: bytes,
    headers: dict[str, str],
    *,
    status: int = 400,
    error_type: str = "signature_verification_failed",
) -> None:
    before = await _counts(bridge)
    got, data = await _post(client, body, headers)
    assert got == status, (headers, data)
    assert data["error"]["type"] == error_type and data["error"]["message"]
    assert await _counts(bridge) == before


def _sig(body: bytes, ts: int | None = None, secret: str = STRIPE_SECRET) -> str:
    return sign_timestamped_hmac(body, [secret], int(time.time()) if ts is None else ts)


def _json_headers(signature: str) -> dict[str, str]:
    return {"Stripe-Signature": signature, "Content-Type": "application/json"}


# -- Stripe-Signature -------------------------------------------------------------------------


@pytest.mark.parametrize("signature", [None, ""], ids=["missing", "empty"])
async def test_hostile_no_signature_is_400(
    make_bridge: BridgeFactory, signature: str | None
) -> None:
    bridge, client = await make_bridge()
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    await _assert_rejected(bridge, client, _body(), headers)


@pytest.mark.parametrize(
    "mangle",
    [
        pytest.param(lambda s: s.split(",")[1], id="no-timestamp"),
        pytest.param(lambda s: s.split(",")[0], id="no-v1"),
        pytest.param(lambda s: s.replace("t=", "t"), id="item-without-equals"),
        pytest.param(lambda s: s.replace("t=", "t=x"), id="timestamp-not-a-number"),
        pytest.param(lambda s: s.replace("t=", "t=+"), id="timestamp-with-sign"),
        pytest.param(lambda s: s.replace("t=", "t=-"), id="timestamp-negative"),
        pytest.param(lambda s: s.replace("v1=", "v1=00"), id="v1-too-long"),
        pytest.param(lambda s: s[:-8], id="v1-truncated"),
        pytest.param(lambda s: s.upper(), id="upper-case"),
        pytest.param(lambda s: s.replace(",", ";"), id="wrong-separator"),
        pytest.param(lambda s: s + ",t=" + s.split(",")[0][2:], id="duplicated-timestamp"),
        pytest.param(lambda s: "t=" + "9" * 40 + "," + s.split(",")[1], id="huge-timestamp"),
        pytest.param(lambda s: s.replace("v1=", "v1=é"), id="non-ascii-v1"),
    ],
)
async def test_hostile_garbled_signature_header_is_400(
    make_bridge: BridgeFactory, mangle: Any
) -> None:
    bridge, client = await make_bridge()
    body = _body()
    await _assert_rejected(bridge, client, body, _json_headers(mangle(_sig(body))))


async def test_hostile_v0_only_signature_is_400(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge()
    body = _body()
    good = _sig(body)
    ts, v1 = good.split(",")
    # the right HMAC, but under the scheme Stripe uses for test-mode legacy signatures
    await _assert_rejected(bridge, client, body, _json_headers(f"{ts},v0={v1[3:]}"))


@pytest.mark.parametrize(
    "timestamp",
    [lambda now: now - 306, lambda now: now + 306, lambda now: now + 3600, lambda now: 0],
    ids=["stale", "future", "far-future", "zero"],
)
async def test_hostile_timestamp_outside_tolerance_is_400(
    make_bridge: BridgeFactory, timestamp: Any
) -> None:
    """Correctly signed, but outside ``tolerance_s`` (300 s) in the past or the future."""
    bridge, client = await make_bridge()
    body = _body()
    ts = timestamp(int(time.time()))
    await _assert_rejected(bridge, client, body, _json_headers(_sig(body, ts=ts)))


async def test_hostile_signature_for_a_different_body_is_400(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge()
    signed = _body()
    other = signed.replace(b'"active"', b'"trialing"')
    assert other != signed
    await _assert_rejected(bridge, client, other, _json_headers(_sig(signed)))


async def test_hostile_signature_with_another_secret_is_400(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge()
    body = _body()
    forged = _sig(body, secret="whsec_attacker_guess_0000000000")
    await _assert_rejected(bridge, client, body, _json_headers(forged))


async def test_hostile_second_signature_header_line_does_not_help(
    make_bridge: BridgeFactory,
) -> None:
    """Two ``Stripe-Signature`` lines: the first one is the one checked; a forged first line
    followed by a valid one is refused (no header-smuggling around the check)."""
    from multidict import CIMultiDict

    bridge, client = await make_bridge()
    body = _body()
    headers: CIMultiDict[str] = CIMultiDict()
    headers.add("Content-Type", "application/json")
    headers.add("Stripe-Signature", "t=1,v1=" + "0" * 64)
    headers.add("Stripe-Signature", _sig(body))
    before = await _counts(bridge)
    resp = await client.post("/webhooks/stripe", data=body, headers=headers)
    assert resp.status == 400
    assert await _counts(bridge) == before


async def test_hostile_thousand_v1_entries_none_valid_is_400(make_bridge: BridgeFactory) -> None:
    """1000 short ``v1`` entries fit in aiohttp's 8190-byte header field and reach the verifier."""
    bridge, client = await make_bridge()
    body = _body()
    entries = ",".join(f"v1={i % 10}" for i in range(1000))
    header = f"t={int(time.time())},{entries}"
    assert len(header) < 8190
    await _assert_rejected(bridge, client, body, _json_headers(header))


async def test_hostile_thousand_v1_entries_with_the_valid_one_last_is_accepted(
    make_bridge: BridgeFactory,
) -> None:
    """Several ``v1`` are legitimate (Stripe sends one per secret during rotation): the
    header stays accepted when the valid one is buried, and stores once."""
    bridge, client = await make_bridge()
    body = _body()
    ts, v1 = _sig(body).split(",")
    entries = ",".join(f"v1={i % 10}" for i in range(999))
    status, data = await _post(client, body, _json_headers(f"{ts},{entries},{v1}"))
    assert status == 200 and data["duplicate"] is False
    assert (await _counts(bridge))["inbox"] == 1


def test_hostile_thousand_full_length_v1_entries_in_the_verifier() -> None:
    """Full-length entries (68 KB) never pass aiohttp's header limit; the verifier itself
    still answers correctly for them (a server with a larger limit stays safe)."""
    from adapters.base import InboundRequest
    from adapters.stripe import StripeAdapter
    from bridge.errors import SignatureError

    adapter = StripeAdapter([STRIPE_SECRET])
    body, now = _body(), int(time.time())
    ts, v1 = _sig(body, ts=now).split(",")
    bogus = ",".join(f"v1={i:064x}" for i in range(1000))

    def request(header: str) -> InboundRequest:
        return InboundRequest(
            "POST", "/webhooks/stripe", {}, {"Stripe-Signature": header}, body, now
        )

    with pytest.raises(SignatureError):
        adapter.verify(request(f"{ts},{bogus}"))
    adapter.verify(request(f"{ts},{bogus},{v1}"))  # does not raise


async def test_hostile_100kb_signature_header_is_400(make_bridge: BridgeFactory) -> None:
    """aiohttp refuses header fields over 8190 bytes before any handler runs."""
    bridge, client = await make_bridge()
    body = _body()
    for huge in (
        _sig(body) + ",v1=" + "a" * 100_000,
        _sig(body) + "," + ",".join(f"v1={i:064x}" for i in range(1000)),
    ):
        before = await _counts(bridge)
        status, _ = await _post(client, body, _json_headers(huge))
        assert status == 400
        assert await _counts(bridge) == before


# -- bodies -----------------------------------------------------------------------------------


async def _assert_bad_payload(bridge: Bridge, client: TestClient[Any, Any], body: bytes) -> None:
    await _assert_rejected(bridge, client, body, stripe_headers(body), error_type="invalid_payload")


async def test_hostile_non_utf8_body_is_400(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge()
    await _assert_bad_payload(bridge, client, _body().replace(b"cus_hostile", b"cus_\xff\xfe"))


async def test_hostile_invalid_json_is_400(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge()
    for body in (b"{", b"", b"{'id': 'evt_1'}", b'{"id": "evt_1",}', b"NaN", _body()[:-1]):
        await _assert_bad_payload(bridge, client, body)


async def test_hostile_json_that_is_not_an_object_is_400(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge()
    for body in (b"[]", b"[{}]", b'"evt_1"', b"42", b"null", b"true"):
        await _assert_bad_payload(bridge, client, body)


async def test_hostile_body_over_limit_is_413(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge("server: {{max_body_bytes: 4096}}")
    event = stripe_event("customer.subscription.created", {**SUB, "metadata": {"p": "x" * 8192}})
    body = orjson.dumps(event)
    await _assert_rejected(
        bridge, client, body, stripe_headers(body), status=413, error_type="payload_too_large"
    )


async def test_hostile_chunked_body_over_limit_is_413(make_bridge: BridgeFactory) -> None:
    """No Content-Length to trust: the limit is enforced while reading the stream."""
    bridge, client = await make_bridge("server: {{max_body_bytes: 4096}}")
    event = stripe_event("customer.subscription.created", {**SUB, "metadata": {"p": "x" * 8192}})
    body = orjson.dumps(event)

    async def stream() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    before = await _counts(bridge)
    status, data = await _post(client, stream(), stripe_headers(body))
    assert status == 413 and data["error"]["type"] == "payload_too_large"
    assert await _counts(bridge) == before


@pytest.mark.parametrize(
    "nested",
    [b'{"a":' * n + b"1" + b"}" * n for n in (300, 1100, 10_000)] + [b"[" * 10_000 + b"]" * 10_000],
    ids=["objects-300", "objects-1100", "objects-10k", "arrays-10k"],
)
async def test_hostile_deeply_nested_json_is_400(make_bridge: BridgeFactory, nested: bytes) -> None:
    bridge, client = await make_bridge()
    body = (
        b'{"id":"evt_deep","object":"event","type":"customer.updated","created":1,'
        b'"data":{"object":{"x":' + nested + b"}}}"
    )
    await _assert_bad_payload(bridge, client, body)


@pytest.mark.parametrize("missing", ["id", "type", "created", "data"])
async def test_hostile_missing_required_field_is_400(
    make_bridge: BridgeFactory, missing: str
) -> None:
    bridge, client = await make_bridge()
    event = stripe_event("customer.subscription.created", SUB)
    del event[missing]
    await _assert_bad_payload(bridge, client, orjson.dumps(event))


@pytest.mark.parametrize("value", [5, 1.5, True, None, [], {}, ["invoice.paid"], ""])
@pytest.mark.parametrize("field", ["id", "type"])
async def test_hostile_id_or_type_of_the_wrong_kind_is_400(
    make_bridge: BridgeFactory, field: str, value: Any
) -> None:
    bridge, client = await make_bridge()
    event = stripe_event("customer.subscription.created", SUB)
    event[field] = value
    await _assert_bad_payload(bridge, client, orjson.dumps(event))


@pytest.mark.parametrize("data", [None, [], "x", {"object": None}, {"object": []}, {}])
async def test_hostile_data_object_of_the_wrong_kind_is_400(
    make_bridge: BridgeFactory, data: Any
) -> None:
    bridge, client = await make_bridge()
    event = stripe_event("customer.subscription.created", SUB)
    event["data"] = data
    await _assert_bad_payload(bridge, client, orjson.dumps(event))


async def test_hostile_created_of_the_wrong_kind_is_400(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge()
    for created in ("1700000000", 1.5, True, None):
        event = stripe_event("customer.subscription.created", SUB)
        event["created"] = created
        await _assert_bad_payload(bridge, client, orjson.dumps(event))


@pytest.mark.parametrize(
    "event_type", ["balance.available", "totally.made_up", "v2.core.unknown", "x" * 500]
)
async def test_hostile_unknown_event_type_is_200_and_ignored(
    make_bridge: BridgeFactory, event_type: str
) -> None:
    bridge, client = await make_bridge()
    body = orjson.dumps(stripe_event(event_type, {"id": "obj_1", "object": "thing"}))
    status, data = await _post(client, body, stripe_headers(body))
    assert status == 200 and data["events"] == []
    counts = await _counts(bridge)
    assert (counts["inbox"], counts["ignored"], counts["events"]) == (1, 1, 0)


async def test_hostile_signed_body_with_another_content_type_is_accepted(
    make_bridge: BridgeFactory,
) -> None:
    """Decision (SECURITY.md): the content type is not signed and Stripe always sends
    ``application/json``; the signature over the raw bytes is the authority, so a correctly
    signed body is processed whatever its content type (a proxy rewriting the header must not
    lose a payment). An unsigned one is refused as usual."""
    bridge, client = await make_bridge()
    body = _body()
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        headers = {"Stripe-Signature": _sig(body), "Content-Type": content_type}
        status, _ = await _post(client, body, headers)
        assert status == 200
    assert (await _counts(bridge))["inbox"] == 1
    other = orjson.dumps(stripe_event("customer.subscription.created", SUB))
    await _assert_rejected(bridge, client, other, {"Content-Type": "text/plain"})


async def test_hostile_form_encoded_body_is_not_parsed_as_form(
    make_bridge: BridgeFactory,
) -> None:
    """A form body is verified and parsed as raw bytes: it is not JSON, so 400."""
    bridge, client = await make_bridge()
    body = b"id=evt_1&type=invoice.paid"
    headers = {"Stripe-Signature": _sig(body), "Content-Type": "application/x-www-form-urlencoded"}
    await _assert_rejected(bridge, client, body, headers, error_type="invalid_payload")


# -- Payment Kit ------------------------------------------------------------------------------

PK_YAML = f'sources: {{{{payment_kit: {{{{signing_secrets: ["{PK_SECRET}"]}}}}}}}}'


async def test_hostile_payment_kit_forged_signature_is_refused(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge(PK_YAML)
    envelope = {
        "id": "evt_pk_forged",
        "source": "payment-kit",
        "type": "customer.subscription.started",
        "time": "2026-01-01T00:00:00.000Z",
        "spec_version": "1.0",
        "object_type": "subscription",
        "object_id": "sub_pk1",
        "data": {"type": "application/json", "object": {"id": "sub_pk1"}},
    }
    body = orjson.dumps(envelope)
    forged = sign_timestamped_hmac(body, ["attacker_guess_secret_0000"], int(time.time()))
    for headers in (
        {"X-Webhook-Signature": forged},
        {"X-Webhook-Signature": sign_timestamped_hmac(b"{}", [PK_SECRET], int(time.time()))},
        {"X-Webhook-Signature": "t=1,v1=" + "0" * 64},
        {"x-component-sig": "0x" + "00" * 64, "x-component-sig-iat": "1"},
    ):
        before = await _counts(bridge)
        resp = await client.post("/webhooks/payment-kit", data=body, headers=headers)
        assert resp.status in (400, 401), headers
        assert (await resp.json())["error"]["type"] == "signature_verification_failed"
        assert await _counts(bridge) == before


# -- admin API --------------------------------------------------------------------------------


async def _admin_status(client: TestClient[Any, Any], headers: dict[str, str]) -> int:
    resp = await client.get("/api/webhook-endpoints", headers=headers)
    if resp.status >= 400:
        assert (await resp.json())["error"]["type"] in ("unauthorized", "not_found")
    return resp.status


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-key"),
        pytest.param(admin_headers("wrong-key-0123456789"), id="wrong-key"),
        pytest.param(admin_headers(ADMIN_KEY + "x"), id="key-with-suffix"),
        pytest.param(admin_headers(ADMIN_KEY[:-1]), id="key-prefix"),
        pytest.param({"Authorization": f"Basic {ADMIN_KEY}"}, id="basic-scheme"),
        pytest.param({"Authorization": f"Token {ADMIN_KEY}"}, id="token-scheme"),
        pytest.param({"Authorization": ADMIN_KEY}, id="no-scheme"),
        pytest.param({"Authorization": "Bearer "}, id="empty-bearer"),
        pytest.param({"Authorization": "Bearer"}, id="bare-bearer"),
        pytest.param({"X-Api-Key": ADMIN_KEY}, id="other-header"),
    ],
)
async def test_hostile_admin_api_without_a_valid_key_is_401(
    make_bridge: BridgeFactory, headers: dict[str, str]
) -> None:
    bridge, client = await make_bridge()
    assert await _admin_status(client, headers) == 401
    resp = await client.post(
        "/api/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/x", "enabled_events": ["*"]},
        headers=headers,
    )
    assert resp.status == 401
    assert (await bridge.store.list_subscribers(kind="endpoint")).count == 0
    assert await _admin_status(client, admin_headers()) == 200


async def test_hostile_admin_api_revoked_key_is_401(make_bridge: BridgeFactory) -> None:
    key_a, key_b = "admin-key-a-0123456789", "admin-key-b-0123456789"
    _, client = await make_bridge(f'admin: {{{{api_keys: ["{key_a}", "{key_b}"]}}}}')
    assert await _admin_status(client, admin_headers(key_a)) == 200
    assert await _admin_status(client, admin_headers(key_b)) == 200
    await client.close()
    _, client2 = await make_bridge(f'admin: {{{{api_keys: ["{key_b}"]}}}}')
    assert await _admin_status(client2, admin_headers(key_a)) == 401
    assert await _admin_status(client2, admin_headers(key_b)) == 200


async def test_hostile_admin_api_with_no_keys_is_404(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge("admin: {{api_keys: []}}")
    for headers in ({}, admin_headers(), admin_headers("")):
        assert await _admin_status(client, headers) == 404
    resp = await client.post(
        "/api/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/x", "enabled_events": ["*"]},
        headers=admin_headers(),
    )
    assert resp.status == 404
    assert (await bridge.store.list_subscribers(kind="endpoint")).count == 0


# -- SSRF at registration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.1/hook",
        "http://127.0.0.1:8080/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[fc00::1]/hook",
        "http://[::ffff:10.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://localhost:8080/hook",
        "https://user:pass@example.com/hook",
        "file:///etc/passwd",
        "gopher://127.0.0.1/",
    ],
)
async def test_hostile_ssrf_endpoint_registration_is_400(
    make_bridge: BridgeFactory, url: str
) -> None:
    bridge, client = await make_bridge("delivery: {{allow_private_networks: false}}")
    resp = await client.post(
        "/api/webhook-endpoints",
        json={"url": url, "enabled_events": ["*"]},
        headers=admin_headers(),
    )
    assert resp.status == 400, url
    error = (await resp.json())["error"]
    assert error["type"] == "invalid_request" and error["message"].startswith("url:")
    assert (await bridge.store.list_subscribers(kind="endpoint")).count == 0


async def test_hostile_ssrf_endpoint_update_to_private_is_400(make_bridge: BridgeFactory) -> None:
    """An endpoint registered with a public literal cannot be moved to a private one."""
    bridge, client = await make_bridge("delivery: {{allow_private_networks: false}}")
    resp = await client.post(
        "/api/webhook-endpoints",
        json={"url": "https://93.184.215.14/hook", "enabled_events": ["*"]},
        headers=admin_headers(),
    )
    assert resp.status == 200
    endpoint_id = (await resp.json())["id"]
    resp = await client.put(
        f"/api/webhook-endpoints/{endpoint_id}",
        json={"url": "http://169.254.169.254/"},
        headers=admin_headers(),
    )
    assert resp.status == 400
    stored = await bridge.store.get_subscriber(endpoint_id)
    assert stored is not None and stored.url == "https://93.184.215.14/hook"


PK_COMPONENT_YAML = f'sources: {{{{payment_kit: {{{{app_public_key: "0x{"11" * 32}"}}}}}}}}'


@pytest.mark.parametrize("depth", [500, 900, 990, 100_000])
async def test_hostile_payment_kit_deep_body_with_component_signature_is_refused(
    make_bridge: BridgeFactory, depth: int
) -> None:
    """The component scheme parses the body *before* verifying (the signed text is built from
    it): a deeply nested body must be refused, not crash the parser (unauthenticated)."""
    bridge, client = await make_bridge(PK_COMPONENT_YAML)
    now = int(time.time())
    headers = {
        "x-component-sig": "0x" + "00" * 64,
        "x-component-sig-iat": str(now),
        "x-component-sig-exp": str(now + 300),
        "x-component-sig-version": "1",
        "Content-Type": "application/json",
    }
    body = b'{"a":' * depth + b"1" + b"}" * depth
    before = await _counts(bridge)
    resp = await client.post("/webhooks/payment-kit", data=body, headers=headers)
    assert resp.status in (400, 401)
    assert (await resp.json())["error"]["type"] == "signature_verification_failed"
    assert await _counts(bridge) == before


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_hostile_admin_api_deep_metadata_is_400(
    make_bridge: BridgeFactory, method: str
) -> None:
    """Metadata nested past what the JSON writer accepts was a 500 on create; now a 400 naming
    the field, and the endpoint stays readable."""
    bridge, client = await make_bridge()
    resp = await client.post(
        "/api/webhook-endpoints",
        json={"url": "http://127.0.0.1:9/x", "enabled_events": ["*"]},
        headers=admin_headers(),
    )
    assert resp.status == 200
    endpoint_id = (await resp.json())["id"]
    deep = '{"a":' * 300 + "1" + "}" * 300
    fields = '"metadata": {"k": ' + deep + "}"
    if method == "POST":
        path = "/api/webhook-endpoints"
        body = '{"url": "http://127.0.0.1:9/y", "enabled_events": ["*"], ' + fields + "}"
    else:
        path = f"/api/webhook-endpoints/{endpoint_id}"
        body = "{" + fields + "}"
    resp = await client.request(method, path, data=body, headers=admin_headers())
    assert resp.status == 400
    assert (await resp.json())["error"]["message"].startswith("metadata")
    listing = await client.get("/api/webhook-endpoints", headers=admin_headers())
    assert listing.status == 200 and (await listing.json())["count"] == 1
    stored = await bridge.store.get_subscriber(endpoint_id)
    assert stored is not None and stored.metadata == {}
