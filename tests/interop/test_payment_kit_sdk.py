"""paybridge in place of Payment Kit's webhook API, checked with the ecosystems' own code
(pinned in package-lock.json, installed by the ``node`` fixture):

* ``@blocklet/payment-js`` 1.27.2, unchanged, manages endpoints on a running ``paybridge
  serve`` in live and test mode; a call signed with another app's key is refused, and so is a
  request signed by ``@blocklet/sdk``'s own signer once its method, path, query or body changed;
  a create retried after a lost answer leaves one endpoint;
* each delivery scheme is accepted by the receivers' own libraries: ``@blocklet/sdk``'s
  ``verifySig`` (``signature: blocklet``, the default for SDK-registered endpoints),
  stripe-node's ``webhooks.constructEvent`` (``stripe``), svix's ``Webhook.verify`` and
  Python's ``standardwebhooks`` (``standard``).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from standardwebhooks import Webhook

from bridge.blocklet import generate_secret_key, public_key_of
from tests.conftest import ADMIN_KEY, admin_headers, stripe_event
from tests.receivers import Received, ok, running, subscription
from tests.reliability.harness import Service, config_data, free_port, post_one, write_config

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

HERE = Path(__file__).resolve().parent
PAYMENT_KIT_DID = "z2qaCNvKMv5GjouKdcDWexv6WqtHbpNPQDnAk"
APP_SK = generate_secret_key()
STARTED = "customer.subscription.started"
JS_TIMEOUT_S = 120


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    """``paybridge serve`` with an admin key and the Payment Kit app's key pair."""
    data = config_data(f"sqlite:///{tmp_path / 'paybridge.db'}", "http://127.0.0.1:9/", "x" * 16)
    data["endpoints"] = []
    data["admin"] = {"api_keys": [ADMIN_KEY]}
    data["sources"]["payment_kit"] = {
        "app_public_key": public_key_of(APP_SK),
        "app_secret_key": APP_SK,
    }
    config = write_config(tmp_path / "config.yaml", data)
    svc = Service(config, free_port(), tmp_path / "serve.log").start()
    try:
        yield await svc.ready()
    finally:
        svc.terminate()
        svc.wait(20)


async def _node_json(node: str, script: str, payload: Any, env: dict[str, str]) -> list[Any]:
    proc = await asyncio.create_subprocess_exec(
        node,
        str(HERE / script),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    async with asyncio.timeout(JS_TIMEOUT_S):
        out, err = await proc.communicate(json.dumps(payload).encode())
    assert proc.returncode == 0, err.decode(errors="replace")
    results: list[Any] = json.loads(out)
    return results


async def _sdk(
    node: str, service: Service, calls: list[dict[str, Any]], *, livemode: bool, sk: str = APP_SK
) -> list[dict[str, Any]]:
    """Run ``calls`` through @blocklet/payment-js, configured as a Payment Kit user would."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BLOCKLET_", "PAYMENT_")) and k not in ("CI",)
    }
    mount = {"did": PAYMENT_KIT_DID, "name": "payment-kit", "port": service.port, "status": 6}
    env.update(
        BLOCKLET_APP_SK=sk,
        BLOCKLET_MODE="test",
        BLOCKLET_MOUNT_POINTS=json.dumps([mount]),
        PAYMENT_LIVEMODE="true" if livemode else "false",
    )
    return await _node_json(node, "payment_sdk.js", calls, env)


def _ok(result: dict[str, Any]) -> Any:
    assert "ok" in result, result
    return result["ok"]


async def _admin_list(service: Service, query: str = "") -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{service.url}/api/webhook-endpoints{query}", headers=admin_headers()) as r,
    ):
        assert r.status == 200
        data: dict[str, Any] = await r.json()
        return data


def _hook(url: str = "http://127.0.0.1:9/hook", **more: Any) -> dict[str, Any]:
    return {"url": url, "enabled_events": [STARTED], **more}


async def test_payment_js_manages_endpoints_in_live_and_test_mode(
    node: str, service: Service
) -> None:
    live = await _sdk(
        node,
        service,
        [
            {"method": "create", "data": _hook(description="live")},
            {"method": "list", "data": {"page": 1, "size": 10}},
            {"method": "retrieve", "id": "$last"},
            {"method": "update", "id": "$last", "data": {"enabled_events": ["invoice.*"]}},
        ],
        livemode=True,
    )
    created, listed, got, updated = map(_ok, live)
    assert (created["livemode"], created["signature"], created["url"]) == (
        True,
        "blocklet",
        _hook()["url"],
    )
    assert created["id"].startswith("we_") and created["secret"]
    assert (listed["count"], [e["id"] for e in listed["list"]]) == (1, [created["id"]])
    assert (got["id"], got["attempts"], "secret" in got) == (created["id"], [], False)
    assert updated["enabled_events"] == ["invoice.*"]

    test = await _sdk(
        node,
        service,
        [
            {"method": "create", "data": _hook(description="test")},
            {"method": "list"},
            {"method": "retrieve", "id": created["id"]},
            {"method": "del", "id": created["id"]},
            {"method": "update", "id": "$last", "data": {"description": "changed"}},
            {"method": "del", "id": "$last"},
            {"method": "retrieve", "id": "$last"},
        ],
        livemode=False,
    )
    t_created, t_listed, other_mode, other_del, t_updated, t_deleted, gone = test
    assert _ok(t_created)["livemode"] is False
    assert [e["id"] for e in _ok(t_listed)["list"]] == [_ok(t_created)["id"]]
    assert (other_mode["status"], other_del["status"]) == (404, 404)
    assert _ok(t_updated)["description"] == "changed"
    assert (_ok(t_deleted)["id"], _ok(t_deleted)["livemode"]) == (_ok(t_created)["id"], False)
    assert gone["status"] == 404

    (still_live,) = await _sdk(node, service, [{"method": "list"}], livemode=True)
    assert [e["id"] for e in _ok(still_live)["list"]] == [created["id"]]
    assert (await _admin_list(service))["count"] == 1


class LosingProxy:
    """A real HTTP hop in front of the service (a load balancer, say) that forwards the first
    create and then answers 502 instead of the service's reply, as when an answer is lost."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.creates = 0
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> LosingProxy:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                request.method,
                self.target + str(request.rel_url),
                data=await request.read(),
                headers=headers,
            ) as upstream,
        ):
            body = await upstream.read()
        if request.method == "POST":
            self.creates += 1
            if self.creates == 1:
                return web.Response(status=502, text="upstream answer lost")
        return web.Response(body=body, status=upstream.status, content_type="application/json")


async def test_payment_js_create_retried_after_a_lost_answer_makes_one_endpoint(
    node: str, service: Service
) -> None:
    async with LosingProxy(service.url) as proxy:
        hop = Service(service.config, proxy.port, service.log)
        (created,) = await _sdk(node, hop, [{"method": "create", "data": _hook()}], livemode=True)
    assert proxy.creates >= 2  # the SDK retried, re-signed, after the 502
    listed = await _admin_list(service)
    assert [e["id"] for e in listed["list"]] == [_ok(created)["id"]]


async def test_payment_js_signed_by_another_app_is_refused(node: str, service: Service) -> None:
    results = await _sdk(
        node,
        service,
        [{"method": "create", "data": _hook()}, {"method": "list"}],
        livemode=True,
        sk=generate_secret_key(),
    )
    assert [r.get("status") for r in results] == [401, 401]
    assert (await _admin_list(service))["count"] == 0


async def test_requests_signed_by_blocklet_sdk_are_refused_once_changed(
    node: str, service: Service
) -> None:
    """@blocklet/sdk's own signer (getSignData, as component.call uses it) signs one create;
    sent unchanged it is accepted, with its method, path, query or body changed it is not."""
    path, query, body = "/api/webhook-endpoints", {"livemode": "true"}, _hook(description="sdk")
    sign = {"op": "sdk_sign", "sk": APP_SK, "body": json.dumps(body), "method": "POST"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOCKLET_")}
    [signed] = await _node_json(node, "interop.js", [{**sign, "url": path, "query": query}], env)
    headers = signed["ok"]
    changed = [
        ("PUT", path + "/we_x", query, body),
        ("POST", path + "/we_x/rotate", query, body),
        ("POST", path, {"livemode": "false"}, body),
        ("POST", path, query, {**body, "url": "http://127.0.0.1:9/elsewhere"}),
    ]
    async with aiohttp.ClientSession() as session:
        for method, url, q, b in changed:
            async with session.request(
                method, service.url + url, params=q, json=b, headers=headers
            ) as r:
                assert r.status == 401, (method, url, q, b)
        assert (await _admin_list(service))["count"] == 0
        async with session.post(service.url + path, params=query, json=body, headers=headers) as r:
            assert r.status == 200
            assert (await r.json())["livemode"] is True
    assert (await _admin_list(service))["count"] == 1


async def _admin_create(service: Service, body: dict[str, Any]) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{service.url}/api/webhook-endpoints", json=body, headers=admin_headers()
        ) as r,
    ):
        data: dict[str, Any] = await r.json()
        assert r.status == 200, data
        return data


def _verify_cmds(
    blocklet: Received, stripe: Received, standard: Received, secrets: dict[str, str]
) -> list[dict[str, Any]]:
    def headers(req: Received) -> dict[str, str]:
        return {k.lower(): v for k, v in req.headers.items()}

    return [
        {
            "op": "sdk_verify",
            "sk": APP_SK,
            "headers": headers(blocklet),
            "body": blocklet.body.decode(),
            "method": "POST",
            "url": blocklet.path,
            "query": {},
        },
        {
            "op": "stripe_construct",
            "body": stripe.body.decode(),
            "header": stripe.headers["X-Webhook-Signature"],
            "secret": secrets["stripe"],
        },
        {
            "op": "svix_verify",
            "body": standard.body.decode(),
            "headers": headers(standard),
            "secret": secrets["standard"],
        },
    ]


def _tampered(cmds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**c, "body": c["body"].replace(STARTED, "customer.subscription.deleted")} for c in cmds
    ]


async def test_deliveries_are_accepted_by_each_receivers_own_library(
    node: str, service: Service
) -> None:
    async with running(ok(), ok(), ok()) as (blocklet_rcv, stripe_rcv, standard_rcv):
        (sdk_created,) = await _sdk(
            node,
            service,
            [{"method": "create", "data": _hook(blocklet_rcv.url("/cb"))}],
            livemode=False,
        )
        assert _ok(sdk_created)["signature"] == "blocklet"
        stripe_ep = await _admin_create(service, _hook(stripe_rcv.url(), signature="stripe"))
        standard_ep = await _admin_create(service, _hook(standard_rcv.url()))
        body = orjson.dumps(
            stripe_event("customer.subscription.created", subscription("sub_interop"))
        )
        async with aiohttp.ClientSession() as session:
            assert await post_one(session, service.url, body) == 200
        (blocklet,) = await blocklet_rcv.wait_count(1)
        (stripe,) = await stripe_rcv.wait_count(1)
        (standard,) = await standard_rcv.wait_count(1)
    secrets = {"stripe": stripe_ep["secret"], "standard": standard_ep["secret"]}
    cmds = _verify_cmds(blocklet, stripe, standard, secrets)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLOCKLET_")}
    accepted = await _node_json(node, "interop.js", cmds, env)
    refused = await _node_json(node, "interop.js", _tampered(cmds), env)
    assert accepted[0] == {"ok": 200}, accepted  # verifySig called next()
    assert "ok" in accepted[1] and "ok" in accepted[2], accepted
    assert accepted[1]["ok"]["type"] == accepted[2]["ok"]["type"] == STARTED
    assert accepted[1]["ok"]["id"] == stripe.headers["webhook-id"]
    assert refused[0] == {"ok": 401}
    assert "error" in refused[1] and "error" in refused[2]
    payload = Webhook(standard_ep["secret"]).verify(standard.body, dict(standard.headers))
    assert payload["type"] == STARTED
