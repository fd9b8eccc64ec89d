"""The admin API as Payment Kit's SDK calls it: component-signed requests (signed here with
bridge.blocklet's signer, byte-identical to @blocklet/sdk's, see tests/interop), livemode from
the query string, Payment Kit's response shapes, idempotent creates, blocklet-signed deliveries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from bridge.blocklet import generate_secret_key, public_key_of, sign_component, verify_component
from bridge.service import Bridge
from tests.conftest import admin_headers, make_config, post_stripe, stripe_event
from tests.receivers import ManualClock, ok, running, subscription

Client = TestClient[Any, Any]
APP_SK = generate_secret_key()
OTHER_SK = generate_secret_key()
STARTED = "customer.subscription.started"
PATH = "/api/webhook-endpoints"
TWEBHOOK_ENDPOINT = {
    "id",
    "livemode",
    "api_version",
    "url",
    "description",
    "enabled_events",
    "metadata",
    "status",
    "created_at",
    "created_via",
    "updated_at",
}
TWEBHOOK_ATTEMPT = {
    "id",
    "livemode",
    "event_id",
    "webhook_endpoint_id",
    "status",
    "response_status",
    "response_body",
    "retry_count",
    "created_at",
    "updated_at",
}


def _app_yaml(secret_key: bool = True) -> str:
    sk = f"    app_secret_key: '{APP_SK}'\n" if secret_key else ""
    return f"sources:\n  payment_kit:\n    app_public_key: '{public_key_of(APP_SK)}'\n{sk}"


async def _client(
    tmp_path: Path,
    aiohttp_client: AiohttpClient,
    extra: str | None = None,
    clock: ManualClock | None = None,
) -> Client:
    config = make_config(tmp_path, _app_yaml() if extra is None else extra)
    bridge = Bridge(config, clock=clock) if clock is not None else Bridge(config)
    return await aiohttp_client(bridge.web_app())


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def client(tmp_path: Path, aiohttp_client: AiohttpClient, clock: ManualClock) -> Client:
    return await _client(tmp_path, aiohttp_client, clock=clock)


async def _signed(
    client: Client,
    method: str,
    path: str,
    body: Any = None,
    *,
    livemode: bool | None = True,
    sk: str = APP_SK,
    now: float | None = None,
    signed_as: dict[str, Any] | None = None,
    status: int = 200,
) -> dict[str, Any]:
    """Call like @blocklet/payment-js: ``?livemode=`` on the URL, x-component-sig* headers.
    ``signed_as`` overrides what the signature covers (method, path, query, body)."""
    query = {} if livemode is None else {"livemode": "true" if livemode else "false"}
    cover: dict[str, Any] = {"method": method, "path": path, "query": query, "body": body}
    cover.update(signed_as or {})
    headers = sign_component(
        **cover, secret_key=sk, now=int(now if now is not None else client_clock(client))
    )
    if body is not None:
        headers["Content-Type"] = "application/json"
    data = orjson.dumps(body) if body is not None else None
    resp = await client.request(method, path, params=query, data=data, headers=headers)
    out: dict[str, Any] = await resp.json()
    assert resp.status == status, out
    return out


def client_clock(client: Client) -> float:
    from bridge.app import BRIDGE_KEY

    return float(client.app[BRIDGE_KEY].clock())


def _hook(**more: Any) -> dict[str, Any]:
    return {"url": "http://127.0.0.1:9/hook", "enabled_events": [STARTED], **more}


async def _count(client: Client) -> int:
    resp = await client.get(PATH, headers=admin_headers())
    count: int = (await resp.json())["count"]
    return count


# -- 1. component-signature auth ------------------------------------------------------------


async def test_api_component_signed_crud_in_payment_kit_shapes(client: Client) -> None:
    created = await _signed(client, "POST", PATH, _hook(description="sdk"))
    assert set(created) >= TWEBHOOK_ENDPOINT
    assert created["object"] == "webhook_endpoint"
    assert (created["livemode"], created["signature"]) == (True, "blocklet")
    assert created["created_at"].endswith("Z") and len(created["created_at"]) == 24
    one = f"{PATH}/{created['id']}"
    listed = await _signed(client, "GET", PATH)
    assert set(listed) == {"count", "list"}
    assert [e["id"] for e in listed["list"]] == [created["id"]]
    got = await _signed(client, "GET", one)
    assert (got["attempts"], "secret" in got) == ([], False)
    updated = await _signed(client, "PUT", one, {"status": "disabled"})
    assert updated["status"] == "disabled"
    deleted = await _signed(client, "DELETE", one)
    assert (deleted["id"], deleted["deleted"], deleted["url"]) == (
        created["id"],
        True,
        _hook()["url"],
    )
    await _signed(client, "GET", one, status=404)


@pytest.mark.parametrize(
    ("change", "signed_as"),
    [
        ("another app's key", {}),
        ("expired", {}),
        ("method", {"method": "PUT"}),
        ("path", {"path": "/api/webhook-endpoints/we_other"}),
        ("query", {"query": {"livemode": "false"}}),
        ("body", {"body": {"url": "http://127.0.0.1:9/other", "enabled_events": ["*"]}}),
    ],
)
async def test_api_refuses_forged_component_signatures_and_changes_nothing(
    client: Client, clock: ManualClock, change: str, signed_as: dict[str, Any]
) -> None:
    ep = await _signed(client, "POST", PATH, _hook())
    one = f"{PATH}/{ep['id']}"
    sk = OTHER_SK if change == "another app's key" else APP_SK
    now = clock.now - 301 if change == "expired" else None
    if change in ("method", "path"):
        refused = await _signed(
            client, "DELETE", one, sk=sk, now=now, signed_as=signed_as, status=401
        )
    else:
        body = _hook(description="forged")
        refused = await _signed(
            client, "POST", PATH, body, sk=sk, now=now, signed_as=signed_as, status=401
        )
    assert refused["error"]["type"] == "unauthorized"
    assert await _count(client) == 1
    assert (await _signed(client, "GET", one))["id"] == ep["id"]


async def test_api_component_auth_is_off_without_app_key(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    no_app = await _client(tmp_path, aiohttp_client, "")
    await _signed(no_app, "GET", PATH, status=401)
    assert (await no_app.get(PATH, headers=admin_headers())).status == 200


async def test_api_with_only_an_app_key_is_on_for_signed_calls(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    only_app = await _client(tmp_path, aiohttp_client, _app_yaml() + "admin:\n  api_keys: []\n")
    assert (await _signed(only_app, "GET", PATH))["count"] == 0
    assert (await only_app.get(PATH)).status == 401
    assert (await only_app.get(PATH, headers=admin_headers())).status == 401


async def test_api_refuses_signed_call_with_non_json_body(client: Client) -> None:
    headers = sign_component(body={}, method="POST", path=PATH, query={}, secret_key=APP_SK, now=0)
    resp = await client.post(PATH, data=b"{", headers=headers)
    assert resp.status == 400
    assert await _count(client) == 0


# -- 2. livemode from the query -------------------------------------------------------------


async def test_api_livemode_from_query_separates_endpoints(client: Client) -> None:
    live = await _signed(client, "POST", PATH, _hook(description="live"), livemode=True)
    test = await _signed(client, "POST", PATH, _hook(description="test"), livemode=False)
    assert (live["livemode"], test["livemode"]) == (True, False)
    assert [e["id"] for e in (await _signed(client, "GET", PATH))["list"]] == [live["id"]]
    listed = await _signed(client, "GET", PATH, livemode=False)
    assert [e["id"] for e in listed["list"]] == [test["id"]]
    other = f"{PATH}/{test['id']}"
    for method, body in (("GET", None), ("PUT", {"status": "disabled"}), ("DELETE", None)):
        await _signed(client, method, other, body, livemode=True, status=404)
    kept = await _signed(client, "GET", other, livemode=False)
    assert kept["status"] == "enabled"
    # the query wins over a livemode in the body; no query: both modes, as for Bearer users
    forced = await _signed(client, "POST", PATH, _hook(livemode=True), livemode=False)
    assert forced["livemode"] is False
    assert (await _signed(client, "GET", PATH, livemode=None))["count"] == 3


# -- 3. shapes of attempts ------------------------------------------------------------------


async def test_api_retrieve_shows_recent_attempts_expanded(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    async with running(ok()) as (rcv,):
        client = await _client(tmp_path, aiohttp_client)
        ep = await _signed(client, "POST", PATH, _hook(url=rcv.url()), livemode=False)
        status, _ = await post_stripe(
            client, stripe_event("customer.subscription.created", subscription("sub_att"))
        )
        assert status == 200
        await rcv.wait_count(1)
        got = await _wait_finished_attempt(client, ep["id"])
    (attempt,) = got["attempts"]
    assert set(attempt) >= TWEBHOOK_ATTEMPT
    assert (attempt["status"], attempt["response_status"], attempt["retry_count"]) == (
        "succeeded",
        200,
        0,
    )
    assert attempt["livemode"] is False and attempt["webhook_endpoint_id"] == ep["id"]
    assert attempt["event"]["type"] == STARTED and attempt["event"]["id"] == attempt["event_id"]
    assert attempt["endpoint"]["id"] == ep["id"]
    resp = await client.get(
        f"/api/webhook-attempts?webhook_endpoint_id={ep['id']}", headers=admin_headers()
    )
    (listed,) = (await resp.json())["list"]
    assert set(listed) >= TWEBHOOK_ATTEMPT and listed["livemode"] is False


async def _wait_finished_attempt(client: Client, endpoint_id: str) -> dict[str, Any]:
    from tests.receivers import wait_until

    found: dict[str, Any] = {}

    async def done() -> bool:
        found.update(await _signed(client, "GET", f"{PATH}/{endpoint_id}", livemode=False))
        return bool(found["attempts"]) and found["attempts"][0]["status"] != "pending"

    await wait_until(done, f"a finished attempt for {endpoint_id}")
    return found


# -- 4. idempotent create -------------------------------------------------------------------


async def test_api_repeated_signed_create_returns_the_first_endpoint(
    client: Client, clock: ManualClock
) -> None:
    first = await _signed(client, "POST", PATH, _hook())
    clock.advance(2)  # the SDK's retry: the same call, re-signed with a new iat
    resp_headers, again = await _raw_signed(client, _hook())
    assert (again["id"], again["secret"]) == (first["id"], first["secret"])
    assert resp_headers.get("Idempotent-Replayed") == "true"
    assert await _count(client) == 1
    other_mode = await _signed(client, "POST", PATH, _hook(), livemode=False)
    other_body = await _signed(client, "POST", PATH, _hook(description="another"))
    clock.advance(301)  # past the window: an identical create made on purpose is a new one
    later = await _signed(client, "POST", PATH, _hook())
    assert len({first["id"], other_mode["id"], other_body["id"], later["id"]}) == 4
    assert await _count(client) == 4


async def _raw_signed(client: Client, body: dict[str, Any]) -> tuple[dict[str, str], Any]:
    query = {"livemode": "true"}
    headers = sign_component(
        body=body,
        method="POST",
        path=PATH,
        query=query,
        secret_key=APP_SK,
        now=int(client_clock(client)),
    )
    resp = await client.post(PATH, params=query, json=body, headers=headers)
    assert resp.status == 200
    return dict(resp.headers), await resp.json()


async def test_api_repeated_create_is_per_caller(client: Client) -> None:
    signed = await _signed(client, "POST", PATH, _hook())
    resp = await client.post(PATH + "?livemode=true", json=_hook(), headers=admin_headers())
    by_key = await resp.json()
    assert by_key["id"] != signed["id"]
    resp = await client.post(PATH + "?livemode=true", json=_hook(), headers=admin_headers())
    assert (await resp.json())["id"] == by_key["id"]
    assert await _count(client) == 2


async def test_api_changed_endpoint_is_not_a_replay(client: Client) -> None:
    first = await _signed(client, "POST", PATH, _hook())
    await _signed(client, "PUT", f"{PATH}/{first['id']}", {"url": "http://127.0.0.1:9/moved"})
    second = await _signed(client, "POST", PATH, _hook())
    assert second["id"] != first["id"] and second["url"] == _hook()["url"]


async def test_api_idempotency_key_header(client: Client, clock: ManualClock) -> None:
    def post(body: dict[str, Any], key: str) -> Any:
        headers = {**admin_headers(), "Idempotency-Key": key}
        return client.post(PATH, json=body, headers=headers)

    first = await (await post(_hook(), "k1")).json()
    clock.advance(3600)  # keys last a day, beyond the body rule's window
    assert (await (await post(_hook(), "k1")).json())["id"] == first["id"]
    reused = await post(_hook(description="else"), "k1")
    assert reused.status == 409
    assert (await (await post(_hook(), "k2")).json())["id"] != first["id"]
    assert await _count(client) == 2


# -- 5. deliveries signed as Payment Kit signs them -----------------------------------------


async def test_api_sdk_endpoint_deliveries_carry_a_component_signature(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    async with running(ok(), ok()) as (blocklet_rcv, standard_rcv):
        client = await _client(tmp_path, aiohttp_client)
        await _signed(client, "POST", PATH, _hook(url=blocklet_rcv.url("/cb")), livemode=False)
        chosen = await _signed(
            client,
            "POST",
            PATH,
            _hook(url=standard_rcv.url(), signature="standard"),
            livemode=False,
        )
        await post_stripe(
            client, stripe_event("customer.subscription.created", subscription("sub_sig"))
        )
        (req,) = await blocklet_rcv.wait_count(1)
        (std,) = await standard_rcv.wait_count(1)
    body = orjson.loads(req.body)
    verify_component(
        req.headers,
        body=body,
        method="POST",
        path="/cb",
        query={},
        public_key=public_key_of(APP_SK),
        now=float(req.headers["x-component-sig-iat"]),
    )
    assert body["type"] == STARTED
    from standardwebhooks import Webhook

    Webhook(chosen["secret"]).verify(std.body, dict(std.headers))


async def test_api_sdk_create_without_app_secret_key_is_refused_clearly(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    client = await _client(tmp_path, aiohttp_client, _app_yaml(secret_key=False))
    refused = await _signed(client, "POST", PATH, _hook(), status=400)
    assert "app_secret_key" in refused["error"]["message"]
    assert await _count(client) == 0
    chosen = await _signed(client, "POST", PATH, _hook(signature="stripe"))
    assert chosen["signature"] == "stripe" and chosen["secret"]


async def test_api_replayed_signed_calls_change_nothing_more(client: Client) -> None:
    """A captured call sent again as is (same signature, still valid): the create answers the
    endpoint it made, the delete finds nothing left to delete."""
    query = {"livemode": "true"}
    body = _hook()
    create = sign_component(
        body=body,
        method="POST",
        path=PATH,
        query=query,
        secret_key=APP_SK,
        now=int(client_clock(client)),
    )
    first = await (await client.post(PATH, params=query, json=body, headers=create)).json()
    replayed = await client.post(PATH, params=query, json=body, headers=create)
    assert (await replayed.json())["id"] == first["id"]
    assert await _count(client) == 1
    one = f"{PATH}/{first['id']}"
    delete = sign_component(
        body=None,
        method="DELETE",
        path=one,
        query=query,
        secret_key=APP_SK,
        now=int(client_clock(client)),
    )
    assert (await client.delete(one, params=query, headers=delete)).status == 200
    assert (await client.delete(one, params=query, headers=delete)).status == 404
    assert await _count(client) == 0
