"""Shared fixtures: configs, a started Bridge with its aiohttp test client, signed posts.

Everything is real: a SQLite file in tmp_path, the real signer, local aiohttp servers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from bridge.clock import Clock
from bridge.config import Config, parse_config
from bridge.service import Bridge
from bridge.signing import sign_timestamped_hmac

STRIPE_SECRET = "whsec_test_stripe_secret_0123456789"
PK_SECRET = "pk_test_webhook_secret_0123456789"
ADMIN_KEY = "test-admin-key-0123456789"
FIXTURES = Path(__file__).parent / "fixtures"
SHARED_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"

BASE_YAML = f"""
store: {{url: "sqlite:///{{db}}"}}
admin: {{api_keys: ["{ADMIN_KEY}"]}}
sources:
  stripe:
    signing_secrets: ["{STRIPE_SECRET}"]
    correlation_window_s: 120
delivery:
  allow_private_networks: true
  schedule_s: [0.2, 0.4, 0.8]
  jitter: 0
  timeout_s: 5
  poll_interval_s: 0.05
bus:
  handler_timeout_s: 5
"""


def make_config(tmp_path: Path, extra: str = "", **fmt: Any) -> Config:
    """The test config (fast retry schedule, private networks allowed) plus ``extra`` YAML
    merged at the top level (later keys win)."""
    import yaml

    base = yaml.safe_load(BASE_YAML.replace("{db}", str(tmp_path / "paybridge.db")))
    more = yaml.safe_load(extra.format(**fmt)) if extra else {}
    return parse_config(yaml.safe_dump(_deep_merge(base, more or {})), env={})


def _deep_merge(base: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in more.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def stripe_headers(
    body: bytes, secret: str = STRIPE_SECRET, ts: int | None = None
) -> dict[str, str]:
    """Headers of a correctly signed Stripe webhook request."""
    header = sign_timestamped_hmac(body, [secret], int(time.time()) if ts is None else ts)
    return {"Stripe-Signature": header, "Content-Type": "application/json"}


def stripe_event(
    event_type: str,
    obj: dict[str, Any],
    *,
    event_id: str | None = None,
    api_version: str = "2024-06-20",
    previous_attributes: dict[str, Any] | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """A whole Stripe snapshot event around ``obj``."""
    import secrets

    data: dict[str, Any] = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": event_id or f"evt_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": api_version,
        "created": created or int(time.time()),
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }


BridgeFactory = Callable[..., Awaitable[tuple[Bridge, TestClient[Any, Any]]]]


@pytest.fixture
async def make_bridge(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> AsyncIterator[BridgeFactory]:
    """``await make_bridge(extra_yaml="", register=None, clock=None)`` → a started Bridge (on
    ``clock`` if given) and a test client for its web app. ``register(bridge)`` runs before
    start (bus handlers)."""

    async def factory(
        extra_yaml: str = "",
        register: Callable[[Bridge], None] | None = None,
        clock: Clock | None = None,
        **fmt: Any,
    ) -> tuple[Bridge, TestClient[Any, Any]]:
        config = make_config(tmp_path, extra_yaml, **fmt)
        bridge = Bridge(config, clock=clock) if clock is not None else Bridge(config)
        if register is not None:
            register(bridge)
        client = await aiohttp_client(bridge.web_app())
        return bridge, client

    yield factory


async def post_stripe(
    client: TestClient[Any, Any],
    event: dict[str, Any] | bytes,
    secret: str = STRIPE_SECRET,
    ts: int | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST a signed Stripe event (signed at ``ts``, default now); returns (status, JSON
    body)."""
    body = event if isinstance(event, bytes) else orjson.dumps(event)
    headers = stripe_headers(body, secret, ts)
    resp = await client.post("/webhooks/stripe", data=body, headers=headers)
    return resp.status, await resp.json()


def admin_headers(key: str = ADMIN_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
