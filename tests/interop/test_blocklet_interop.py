"""bridge.blocklet against ArcBlock's own JavaScript (@blocklet/sdk 1.17.12, @ocap/wallet
1.30.24, json-stable-stringify 1.3.0, pinned in package-lock.json), both ways.

Needs ``node``; the packages are installed by the ``node`` fixture (tests/interop/conftest.py).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from adapters.base import InboundRequest
from adapters.payment_kit import PaymentKitAdapter
from bridge.blocklet import (
    component_signed_text,
    generate_secret_key,
    public_key_of,
    sign_component,
    stable_stringify,
    verify_component,
)
from bridge.errors import SignatureError

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

HERE = Path(__file__).resolve().parent
RunJs = Callable[[list[dict[str, Any]]], list[Any]]

# JSON *texts*: both sides parse them, then serialize; the outputs must be byte-identical.
TRICKY_JSON = [
    '{"b":1,"a":2,"A":3,"_":4,"aa":5,"":6}',
    "[1.0, -0.0, 0, -0, 1e21, 1e20, 123456789012345678901234567890, 1e-7, 1.5e-6, 0.000001]",
    "[12345678901234567890, 9007199254740993, -9007199254740993, 9007199254740991]",
    "[5e-324, 1.7976931348623157e308, 0.1, 0.30000000000000004, 100.0, 1e300, 2.5e-10]",
    "[1e400, -1e400, 123.456e5, 1E+2, 7e-1]",
    '{"s":"a/b\\\\c\\"d\\n\\t\\r\\b\\f\\u0000\\u001f\\u007f \\u2028\\u2029"}',
    '{"emoji":"\\ud83d\\ude00","lone":"\\ud800x\\udfff","nbsp":"\\u00a0é中文"}',
    '{"\\uffff":1,"\\ud83d\\ude00":2,"\\u00e9":3,"z":4,"10":5,"9":6,"1":7}',
    '{"nested":{"z":[{"b":true,"a":false},null,[]],"a":{}},"n":null}',
    '{"__proto__":{"x":1},"constructor":2}',
]


@pytest.fixture(scope="module")
def run_js(node: str) -> RunJs:
    def run(commands: list[dict[str, Any]]) -> list[Any]:
        done = subprocess.run(
            [node, str(HERE / "interop.js")],
            input=json.dumps(commands).encode(),
            capture_output=True,
            check=True,
            timeout=120,
        )
        results: list[dict[str, Any]] = json.loads(done.stdout)
        for cmd, result in zip(commands, results, strict=True):
            assert "error" not in result, f"{cmd['op']}: {result.get('error')}"
        return [r["ok"] for r in results]

    return run


def test_stable_stringify_matches_json_stable_stringify_on_tricky_values(run_js: RunJs) -> None:
    js = run_js([{"op": "stringify", "json": text} for text in TRICKY_JSON])
    py = [stable_stringify(json.loads(text)) for text in TRICKY_JSON]
    for text, expected, got in zip(TRICKY_JSON, js, py, strict=True):
        assert got == expected, text


def test_ed25519_signature_is_byte_identical_to_ocap_wallet(run_js: RunJs) -> None:
    sk = generate_secret_key()
    text = component_signed_text(
        iat=1, exp=301, body={"x": "é", "f": 1.0}, method="POST", path="/h", query={}
    )
    js_sig, js_pk = run_js(
        [{"op": "wallet_sign", "sk": sk, "text": text}, {"op": "public_key", "sk": sk}]
    )
    headers = sign_component(
        body={"x": "é", "f": 1.0}, method="POST", path="/h", query={}, secret_key=sk, now=1
    )
    assert js_pk == public_key_of(sk)
    # Ed25519 is deterministic: same key and same SHA3-256 digest give the same 64 bytes, so
    # @ocap/wallet signs the digest of exactly the text bridge.blocklet builds.
    assert headers["x-component-sig"] == js_sig.lower()
    assert run_js([{"op": "wallet_verify", "pk": js_pk, "text": text, "sig": js_sig}]) == [True]


def test_sdk_signed_request_is_accepted_by_verify_component(run_js: RunJs) -> None:
    sk = generate_secret_key()
    body = '{"type":"invoice.paid","amount":1.0,"big":12345678901234567890,"t":"中/\\u2028"}'
    query = {"a": "1", "b": "x y"}
    [headers] = run_js(
        [
            {
                "op": "sdk_sign",
                "sk": sk,
                "body": body,
                "method": "POST",
                "url": "/hook",
                "query": query,
            }
        ]
    )
    assert headers["x-component-sig-version"] == "1"
    now = float(headers["x-component-sig-iat"])
    verify_component(
        headers,
        body=json.loads(body),
        method="POST",
        path="/hook",
        query=query,
        public_key=public_key_of(sk),
        now=now,
    )
    with pytest.raises(SignatureError) as info:
        verify_component(
            headers,
            body=json.loads(body.replace("invoice.paid", "invoice.void")),
            method="POST",
            path="/hook",
            query=query,
            public_key=public_key_of(sk),
            now=now,
        )
    assert info.value.status == 401


def _verify_cmd(
    sk: str, headers: dict[str, str], body: str, query: dict[str, str]
) -> dict[str, Any]:
    return {
        "op": "sdk_verify",
        "sk": sk,
        "headers": headers,
        "body": body,
        "method": "POST",
        "url": "/api/payment/callback",
        "query": query,
    }


def test_sign_component_is_accepted_by_sdk_verify_sig(run_js: RunJs) -> None:
    sk = generate_secret_key()
    body_obj = {"id": "evt_1", "data": {"object": {"amount": 2.0, "name": "Zoë ☃", "n": None}}}
    body = json.dumps(body_obj)
    query = {"tenant": "t 1"}
    headers = sign_component(
        body=body_obj,
        method="post",
        path="/api/payment/callback",
        query=query,
        secret_key=sk,
        now=int(time.time()),
    )
    tampered = body.replace("evt_1", "evt_2")
    other_key = sign_component(
        body=body_obj,
        method="post",
        path="/api/payment/callback",
        query=query,
        secret_key=generate_secret_key(),
        now=int(time.time()),
    )
    unsigned = {k: v for k, v in headers.items() if k != "x-component-sig"}
    statuses = run_js(
        [
            _verify_cmd(sk, headers, body, query),
            _verify_cmd(sk, headers, tampered, query),
            _verify_cmd(sk, headers, body, {"tenant": "t 2"}),
            _verify_cmd(sk, other_key, body, query),
            _verify_cmd(sk, unsigned, body, query),
        ]
    )
    assert statuses == [200, 401, 401, 401, 400]


def test_sdk_signed_raw_body_is_accepted_by_the_payment_kit_adapter(run_js: RunJs) -> None:
    sk = generate_secret_key()
    raw = (HERE.parent / "fixtures" / "payment_kit" / "invoice_paid.event.json").read_text()
    raw = raw.replace('"metadata": {}', '"metadata": {"f": 2.50, "big": 98765432109876543210}', 1)
    [headers] = run_js(
        [
            {
                "op": "sdk_sign",
                "sk": sk,
                "body": raw,
                "method": "POST",
                "url": "/webhooks/payment-kit",
                "query": {},
            }
        ]
    )
    adapter = PaymentKitAdapter(app_public_key=public_key_of(sk))
    request = InboundRequest(
        method="POST",
        path="/webhooks/payment-kit",
        query={},
        headers=CIMultiDict(headers),
        body=raw.encode(),
        received_at=float(headers["x-component-sig-iat"]),
    )
    adapter.verify(request)
    forged = InboundRequest(
        method="POST",
        path="/webhooks/payment-kit",
        query={},
        headers=CIMultiDict(headers),
        body=raw.replace("invoice.paid", "invoice.voided").encode(),
        received_at=float(headers["x-component-sig-iat"]),
    )
    with pytest.raises(SignatureError) as info:
        adapter.verify(forged)
    assert info.value.status == 401
