"""Secrets hygiene: with known secrets configured, run ingest (good and forged requests), Stripe
API look-ups that fail, deliveries that fail and succeed, and admin calls; then assert that no
secret appears in any log line (every logger at DEBUG), any error body, any ``repr()`` of the
config, the bridge, its adapters and subscribers, or the output of ``paybridge check``."""

from __future__ import annotations

import base64
import logging
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient

from adapters.stripe_samples import sample_event
from bridge.cli import main as cli_main
from bridge.service import Bridge
from bridge.signing import sign_timestamped_hmac
from tests.conftest import (
    ADMIN_KEY,
    PK_SECRET,
    STRIPE_SECRET,
    BridgeFactory,
    admin_headers,
    stripe_headers,
)
from tests.receivers import Receiver, always, fail_first, running, wait_until

STRIPE_API_KEY = "sk_test_paybridgeSecretApiKey0123456789"
ENDPOINT_SECRET = "whsec_" + base64.b64encode(b"paybridge-endpoint-secret-32byte").decode()
STRIPE_SCHEME_SECRET = "stripe-scheme-endpoint-secret-0123456789"
API_ENDPOINT_SECRET = "whsec_" + base64.b64encode(b"api-created-endpoint-secret-32by").decode()
ROTATED_SECRET = "whsec_" + base64.b64encode(b"rotated-endpoint-secret-32-bytes").decode()
OLD_STRIPE_SECRET = "whsec_old_stripe_secret_during_rotation_01"
STRIPE_API_ERROR = '{"error": {"type": "api_error", "message": "stripe api is down"}}'


def _payment_kit_available() -> bool:
    try:
        import adapters.payment_kit  # noqa: F401
    except ImportError:
        return False
    return True


def _all_secrets() -> list[str]:
    """Every secret string, plus the distinctive part after a ``whsec_`` prefix."""
    secrets = [
        STRIPE_SECRET,
        OLD_STRIPE_SECRET,
        STRIPE_API_KEY,
        ENDPOINT_SECRET,
        STRIPE_SCHEME_SECRET,
        API_ENDPOINT_SECRET,
        ROTATED_SECRET,
        ADMIN_KEY,
        PK_SECRET,
    ]
    return secrets + [s.removeprefix("whsec_") for s in secrets if s.startswith("whsec_")]


def _extra_yaml(api_port: int, hook_port: int) -> str:
    pk = (
        f'\n  payment_kit: {{{{signing_secrets: ["{PK_SECRET}"]}}}}'
        if _payment_kit_available()
        else ""
    )
    return f"""
sources:
  stripe:
    signing_secrets: ["{STRIPE_SECRET}", "{OLD_STRIPE_SECRET}"]
    api_key: "{STRIPE_API_KEY}"
    api_base: "http://127.0.0.1:{api_port}"
    correlation_window_s: 0.05{pk}
endpoints:
  - id: we_standard
    url: "http://127.0.0.1:{hook_port}/standard"
    enabled_events: ["*"]
    secret: "{ENDPOINT_SECRET}"
  - id: we_stripe
    url: "http://127.0.0.1:{hook_port}/stripe"
    enabled_events: ["*"]
    secret: "{STRIPE_SCHEME_SECRET}"
    signature: stripe
"""


def _assert_clean(text: str, where: str) -> None:
    for secret in _all_secrets():
        assert secret not in text, f"a secret leaked into {where}"


async def _forged_requests(client: TestClient[Any, Any]) -> list[str]:
    """Requests that fail verification or parsing; returns their response bodies."""
    body = orjson.dumps(sample_event("customer.subscription.created"))
    stale = int(time.time()) - 3600
    bodies = []
    for data, headers in (
        (body, {"Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}"}),
        (body, stripe_headers(body, ts=stale)),
        (body + b" ", stripe_headers(body)),
        (b"{not json", stripe_headers(b"{not json")),
        (body, {}),
    ):
        resp = await client.post("/webhooks/stripe", data=data, headers=headers)
        assert resp.status == 400
        bodies.append(await resp.text())
    if _payment_kit_available():
        forged = sign_timestamped_hmac(body, ["not-the-pk-secret-000000"], int(time.time()))
        resp = await client.post(
            "/webhooks/payment-kit", data=body, headers={"X-Webhook-Signature": forged}
        )
        assert resp.status in (400, 401)
        bodies.append(await resp.text())
    for headers in ({}, admin_headers("wrong-admin-key-0123456789")):
        resp = await client.get("/api/webhook-endpoints", headers=headers)
        assert resp.status == 401
        bodies.append(await resp.text())
    return bodies


async def _admin_calls(client: TestClient[Any, Any], hook: Receiver) -> list[str]:
    """Create (with a given secret), rotate, read and list endpoints; returns the bodies of the
    responses that must not carry a secret (create and rotate legitimately return theirs)."""
    resp = await client.post(
        "/api/webhook-endpoints",
        json={"url": hook.url("/api"), "enabled_events": ["*"], "secret": API_ENDPOINT_SECRET},
        headers=admin_headers(),
    )
    assert resp.status == 200
    created = await resp.json()
    assert created["secret"] == API_ENDPOINT_SECRET  # shown once, on create
    resp = await client.post(
        f"/api/webhook-endpoints/{created['id']}/rotate",
        json={"secret": ROTATED_SECRET},
        headers=admin_headers(),
    )
    assert resp.status == 200 and (await resp.json())["secret"] == ROTATED_SECRET
    bad = await client.post(
        "/api/webhook-endpoints",
        json={"url": hook.url("/x"), "enabled_events": ["*"], "secret": "short"},
        headers=admin_headers(),
    )
    assert bad.status == 400
    bodies = [await bad.text()]
    for path in ("/api/webhook-endpoints", f"/api/webhook-endpoints/{created['id']}"):
        resp = await client.get(path, headers=admin_headers())
        assert resp.status == 200
        bodies.append(await resp.text())
    return bodies


async def _ingest_and_deliver(bridge: Bridge, client: TestClient[Any, Any], hook: Receiver) -> str:
    """Good events (signed with the old secret too), a basil PaymentIntent whose look-up fails
    against the Stripe API, a thin event whose fetch fails; waits for failed and successful
    deliveries. Returns the events listing."""
    sub = sample_event("customer.subscription.created")
    body = orjson.dumps(sub)
    resp = await client.post(
        "/webhooks/stripe", data=body, headers=stripe_headers(body, OLD_STRIPE_SECRET)
    )
    assert resp.status == 200
    pi = orjson.dumps(sample_event("payment_intent.succeeded", api_version="2025-03-31.basil"))
    assert (
        await client.post("/webhooks/stripe", data=pi, headers=stripe_headers(pi))
    ).status == 200
    thin = {
        "id": "evt_thin_secrets_1",
        "object": "v2.core.event",
        "type": "v1.invoice.paid",
        "created": "2026-01-01T00:00:00.000Z",
        "livemode": False,
        "related_object": {"id": "in_thin_1", "type": "invoice", "url": "/v1/invoices/in_thin_1"},
        "reason": None,
    }
    tb = orjson.dumps(thin)
    assert (
        await client.post("/webhooks/stripe", data=tb, headers=stripe_headers(tb))
    ).status == 200
    # /standard fails twice (500) then succeeds; /stripe always fails (500)
    await hook.wait_for(
        lambda reqs: (
            sum(r.path == "/standard" for r in reqs) >= 3
            and sum(r.path == "/stripe" for r in reqs) >= 2
        ),
        "failed and retried deliveries on both endpoints",
    )

    async def attempts_recorded() -> bool:
        page = await bridge.store.list_attempts(limit=100)
        return any(a.status_code == 500 for a in page.items) and any(
            a.status_code == 200 for a in page.items
        )

    await wait_until(attempts_recorded, "failed and successful attempts recorded")

    async def held_decided() -> bool:  # after the (failing) invoice look-up
        return (await bridge.store.counts())["held"] == 0

    await wait_until(held_decided, "the held PaymentIntent decided")
    resp = await client.get("/api/webhook-attempts?size=100", headers=admin_headers())
    assert resp.status == 200
    return await resp.text()


async def test_secrets_never_in_logs_error_bodies_or_reprs(
    make_bridge: BridgeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: every logger propagates to it
    for name in ("stripe", "aiohttp", "aiohttp.access", "aiohttp.server", "asyncio"):
        logging.getLogger(name).setLevel(logging.DEBUG)

    async def hook_script(n: int, request: Any) -> Any:
        if request.path == "/stripe":
            return await always(500, "receiver exploded")(n, request)
        if request.path == "/standard":
            return await standard(n, request)
        return await always(200)(n, request)

    standard = fail_first(2, status=500)
    async with running(
        always(500, STRIPE_API_ERROR, {"Content-Type": "application/json"}), hook_script
    ) as (api, hook):
        bridge, client = await make_bridge(_extra_yaml(api.port, hook.port))
        bodies = await _forged_requests(client)
        bodies += await _admin_calls(client, hook)
        bodies.append(await _ingest_and_deliver(bridge, client, hook))
        await api.wait_count(2)  # the invoice look-up and the thin fetch reached the Stripe API
        subscribers = (await bridge.store.list_subscribers(limit=100)).items
        reprs = [repr(bridge.config), str(bridge.config), repr(bridge), repr(subscribers)]
        reprs += [repr(a) for a in bridge.adapters.values()]
        reprs.append(repr(bridge.config.model_dump()))
        await client.close()  # stop: shutdown logs too

    for i, body in enumerate(bodies):
        _assert_clean(body, f"response body #{i}")
    for i, text in enumerate(reprs):
        _assert_clean(text, f"repr #{i}")
    assert caplog.records, "nothing was logged: the capture is not working"
    messages = [r.getMessage() for r in caplog.records]
    assert any("we_stripe" in m for m in messages), "failed deliveries were not logged"
    for record in caplog.records:
        _assert_clean(caplog.handler.format(record), f"log line of {record.name}")


def _write_config(tmp_path: Path, extra: str = "") -> Path:
    text = f"""
store: {{url: "sqlite:///{tmp_path / "check.db"}"}}
admin: {{api_keys: ["{ADMIN_KEY}"]}}
sources:
  stripe:
    signing_secrets: ["{STRIPE_SECRET}", "{OLD_STRIPE_SECRET}"]
    api_key: "{STRIPE_API_KEY}"
endpoints:
  - id: we_standard
    url: "https://billing.example.com/hook"
    enabled_events: ["*"]
    secret: "{ENDPOINT_SECRET}"
{extra}"""
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_secrets_not_in_paybridge_check_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_config(tmp_path)
    assert cli_main(["check", "-c", str(path)]) == 0
    out = capsys.readouterr()
    assert "config OK" in out.out
    _assert_clean(out.out + out.err, "paybridge check output")


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(f'    signature: standard\n    bad: ["{STRIPE_API_KEY}"\n', id="yaml-syntax"),
        pytest.param(f"    signature: {ENDPOINT_SECRET}\n", id="invalid-enum-value"),
        pytest.param(f"    status: {ADMIN_KEY}\n", id="invalid-status"),
    ],
)
def test_secrets_not_in_paybridge_check_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], broken: str
) -> None:
    """A config error names the key, never the value next to it (PyYAML's own messages quote
    the offending line: they are reduced to problem, line and column)."""
    path = _write_config(tmp_path, broken)
    assert cli_main(["check", "-c", str(path)]) == 1
    out = capsys.readouterr()
    assert "config error" in out.err
    _assert_clean(out.out + out.err, "a config error")
