"""The runnable examples under examples/ work as documented."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from pytest_aiohttp import AiohttpClient

import bridge
from bridge import Bridge
from tests.conftest import make_config, stripe_event, stripe_headers
from tests.receivers import wait_until

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_public_api_is_explicit() -> None:
    assert sorted(bridge.__all__) == sorted(
        name for name in dir(bridge) if not name.startswith("_") and name in bridge.__all__
    )
    for name in bridge.__all__:
        assert getattr(bridge, name) is not None
    assert {"Bridge", "Event", "EventBus", "load_config"} <= set(bridge.__all__)


async def test_example_embed_in_aiohttp_mounts_paybridge_and_runs_handlers(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    import orjson

    example = _load("embed_in_aiohttp")
    app = example.build_app(bridge=Bridge(make_config(tmp_path)))
    client = await aiohttp_client(app)
    sub = {"id": "sub_example", "object": "subscription", "customer": "cus_ex", "status": "active"}
    body = orjson.dumps(stripe_event("customer.subscription.created", sub))
    resp = await client.post("/payments/webhooks/stripe", data=body, headers=stripe_headers(body))
    assert resp.status == 200
    grants: dict[str, Any] = {}

    async def granted() -> bool:
        grants.update((await (await client.get("/")).json())["grants"])
        return bool(grants.get("cus_ex"))

    await wait_until(granted, "handler never ran")
    assert grants["cus_ex"] == ["subscription:sub_example"]


async def test_example_register_endpoint_lists_then_updates_or_creates(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    from tests.conftest import ADMIN_KEY

    example = _load("register_endpoint")
    bridge = Bridge(make_config(tmp_path))
    client = await aiohttp_client(bridge.web_app())
    base = str(client.make_url("/"))
    first = await example.ensure_webhooks(base, ADMIN_KEY, "http://127.0.0.1:9/callback")
    assert first["id"].startswith("we_") and first["secret"].startswith("whsec_")
    second = await example.ensure_webhooks(
        base, ADMIN_KEY, "http://127.0.0.1:9/callback2", ["payment.succeeded"]
    )
    assert second["id"] == first["id"] and "secret" not in second
    page = await bridge.store.list_subscribers(kind="endpoint")
    assert page.count == 1
    assert page.items[0].url == "http://127.0.0.1:9/callback2"
    assert page.items[0].enabled_events == ["payment.succeeded"]
