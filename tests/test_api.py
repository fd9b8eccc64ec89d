"""bridge/api.py: the admin REST API over a real Bridge (SQLite file, local receivers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from standardwebhooks import Webhook, WebhookVerificationError

from bridge.service import Bridge
from bridge.signing import generate_endpoint_secret
from tests.conftest import ADMIN_KEY, admin_headers, make_config, post_stripe, stripe_event
from tests.receivers import ManualClock, ok, running, subscription

Client = TestClient[Any, Any]
STARTED = "customer.subscription.started"
YAML_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
YAML_ENDPOINT = f"""
endpoints:
  - id: we_from_yaml
    url: http://127.0.0.1:9/yaml
    enabled_events: [{STARTED}]
    secret: {YAML_SECRET}
    description: from the config
"""


async def _client(
    tmp_path: Path, aiohttp_client: AiohttpClient, extra: str = "", clock: ManualClock | None = None
) -> Client:
    config = make_config(tmp_path, extra)
    bridge = Bridge(config, clock=clock) if clock is not None else Bridge(config)
    return await aiohttp_client(bridge.web_app())


@pytest.fixture
async def client(tmp_path: Path, aiohttp_client: AiohttpClient) -> Client:
    return await _client(tmp_path, aiohttp_client, YAML_ENDPOINT)


async def _call(
    client: Client, method: str, path: str, body: Any = None, status: int = 200
) -> dict[str, Any]:
    resp = await client.request(method, path, json=body, headers=admin_headers())
    data: dict[str, Any] = await resp.json()
    assert resp.status == status, data
    return data


async def _create(client: Client, **fields: Any) -> dict[str, Any]:
    body = {"url": "http://127.0.0.1:9/hook", "enabled_events": [STARTED], **fields}
    return await _call(client, "POST", "/api/webhook-endpoints", body)


def _error(data: dict[str, Any]) -> tuple[str, str]:
    return data["error"]["type"], data["error"]["message"]


# -- auth -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": f"Basic {ADMIN_KEY}"},
        {"Authorization": "Bearer "},
    ],
)
async def test_api_refuses_missing_or_wrong_key(client: Client, headers: dict[str, str]) -> None:
    resp = await client.get("/api/webhook-endpoints", headers=headers)
    assert resp.status == 401
    assert _error(await resp.json())[0] == "unauthorized"


async def test_api_is_off_without_admin_keys(tmp_path: Path, aiohttp_client: AiohttpClient) -> None:
    client = await _client(tmp_path, aiohttp_client, "admin:\n  api_keys: []\n")
    for path in ("/api/webhook-endpoints", "/api/events"):
        resp = await client.get(path, headers=admin_headers())
        assert resp.status == 404
        assert _error(await resp.json())[0] == "not_found"


# -- endpoints ------------------------------------------------------------------------------


async def test_api_create_endpoint_shows_generated_secret_once(client: Client) -> None:
    created = await _create(client, description="billing", metadata={"team": "a"})
    assert created["id"].startswith("we_")
    assert created["secret"].startswith("whsec_")
    assert created["created_via"] == "api"
    assert (created["status"], created["signature"]) == ("enabled", "standard")
    assert (created["description"], created["metadata"]) == ("billing", {"team": "a"})
    fetched = await _call(client, "GET", f"/api/webhook-endpoints/{created['id']}")
    listed = await _call(client, "GET", "/api/webhook-endpoints")
    assert "secret" not in fetched
    assert all("secret" not in e for e in listed["list"])
    assert fetched["url"] == created["url"]


async def test_api_create_endpoint_keeps_a_given_secret(client: Client) -> None:
    secret = generate_endpoint_secret()
    created = await _create(client, secret=secret, api_version="2025-03-31.basil")
    assert created["secret"] == secret
    assert created["api_version"] == "2025-03-31.basil"


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"enabled_events": ["customer.subscription.strated"]}, "customer.subscription.strated"),
        ({"enabled_events": ["nope.*"]}, "nope.*"),
        ({"enabled_events": []}, "enabled_events"),
        ({"signature": "hmac"}, "signature"),
        ({"status": "paused"}, "status"),
        ({"colour": "red"}, "colour"),
        ({"secret": "short"}, "secret"),
        ({"secret": "this-is-long-but-not-whsec"}, "whsec_"),
        ({"url": "ftp://127.0.0.1/x"}, "url"),
        ({"id": "not_we_prefixed"}, "id"),
    ],
)
async def test_api_create_endpoint_rejects_bad_fields(
    client: Client, fields: dict[str, Any], named: str
) -> None:
    data = await _call(
        client,
        "POST",
        "/api/webhook-endpoints",
        {"url": "http://127.0.0.1:9/hook", "enabled_events": [STARTED], **fields},
        status=400,
    )
    assert named in _error(data)[1]


async def test_api_create_endpoint_rejects_non_json_body(client: Client) -> None:
    resp = await client.post("/api/webhook-endpoints", data=b"{", headers=admin_headers())
    assert resp.status == 400
    assert _error(await resp.json())[1] == "body must be JSON"


async def test_api_create_blocklet_endpoint_needs_app_key(client: Client) -> None:
    data = await _call(
        client,
        "POST",
        "/api/webhook-endpoints",
        {"url": "http://127.0.0.1:9/h", "enabled_events": ["*"], "signature": "blocklet"},
        status=400,
    )
    assert "app_secret_key" in _error(data)[1]


async def test_api_create_endpoint_refuses_existing_id(client: Client) -> None:
    data = await _call(
        client,
        "POST",
        "/api/webhook-endpoints",
        {"id": "we_from_yaml", "url": "http://127.0.0.1:9/h", "enabled_events": ["*"]},
        status=409,
    )
    assert _error(data)[0] == "conflict"


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/hook", "http://10.0.0.8/hook", "http://[::1]/hook"]
)
async def test_api_ssrf_guard_refuses_private_url_at_registration(
    tmp_path: Path, aiohttp_client: AiohttpClient, url: str
) -> None:
    client = await _client(tmp_path, aiohttp_client, "delivery:\n  allow_private_networks: false\n")
    data = await _call(
        client,
        "POST",
        "/api/webhook-endpoints",
        {"url": url, "enabled_events": ["*"]},
        status=400,
    )
    assert _error(data)[1].startswith("url:")
    listed = await _call(client, "GET", "/api/webhook-endpoints")
    assert listed["count"] == 0


async def test_api_list_endpoints_pages_and_filters(client: Client) -> None:
    for i in range(3):
        await _create(client, description=f"api {i}", livemode=i == 0)
    page1 = await _call(client, "GET", "/api/webhook-endpoints?page=1&size=2")
    page2 = await _call(client, "GET", "/api/webhook-endpoints?page=2&pageSize=2")
    assert (page1["count"], len(page1["list"])) == (4, 2)  # three from the API, one from YAML
    assert (page2["count"], len(page2["list"])) == (4, 2)
    ids = [e["id"] for e in page1["list"] + page2["list"]]
    assert len(set(ids)) == 4
    live = await _call(client, "GET", "/api/webhook-endpoints?livemode=true")
    test = await _call(client, "GET", "/api/webhook-endpoints?livemode=false")
    assert [e["description"] for e in live["list"]] == ["api 0"]
    assert test["count"] == 3
    big = await _call(client, "GET", "/api/webhook-endpoints?size=1000")
    assert big["count"] == len(big["list"]) == 4


@pytest.mark.parametrize("query", ["page=0", "size=x", "livemode=maybe"])
async def test_api_list_endpoints_rejects_bad_paging(client: Client, query: str) -> None:
    await _call(client, "GET", f"/api/webhook-endpoints?{query}", status=400)


async def test_api_update_and_delete_endpoint(client: Client) -> None:
    created = await _create(client)
    path = f"/api/webhook-endpoints/{created['id']}"
    updated = await _call(
        client,
        "PUT",
        path,
        {"enabled_events": ["customer.subscription.*"], "status": "disabled", "description": "d"},
    )
    assert updated["enabled_events"] == ["customer.subscription.*"]
    assert (updated["status"], updated["description"]) == ("disabled", "d")
    assert updated["url"] == created["url"]
    bad = await _call(client, "PUT", path, {"enabled_events": ["invoice.nope"]}, status=400)
    assert "invoice.nope" in _error(bad)[1]
    deleted = await _call(client, "DELETE", path)
    assert deleted["deleted"] is True
    await _call(client, "GET", path, status=404)
    await _call(client, "DELETE", path, status=404)


async def test_api_yaml_endpoints_are_listed_and_read_only(client: Client) -> None:
    path = "/api/webhook-endpoints/we_from_yaml"
    ep = await _call(client, "GET", path)
    assert (ep["created_via"], ep["description"]) == ("config", "from the config")
    assert "secret" not in ep
    for method, sub in (("PUT", ""), ("DELETE", ""), ("POST", "/rotate")):
        data = await _call(client, method, path + sub, {"status": "disabled"}, status=409)
        assert _error(data)[0] == "conflict"
    assert (await _call(client, "GET", path))["status"] == "enabled"


async def test_api_yaml_endpoints_reapplied_at_start_beside_api_ones(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    first = await _client(tmp_path, aiohttp_client, YAML_ENDPOINT)
    api_ep = await _create(first)
    await first.close()
    changed = YAML_ENDPOINT.replace("/yaml", "/yaml2").replace("we_from_yaml", "we_renamed")
    second = await _client(tmp_path, aiohttp_client, changed)
    listed = await _call(second, "GET", "/api/webhook-endpoints")
    by_id = {e["id"]: e for e in listed["list"]}
    assert set(by_id) == {api_ep["id"], "we_renamed"}
    assert by_id["we_renamed"]["url"] == "http://127.0.0.1:9/yaml2"


async def test_api_rotate_signs_with_old_and_new_secret_during_overlap(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    clock = ManualClock()
    async with running(ok()) as (rcv,):
        client = await _client(
            tmp_path, aiohttp_client, "delivery:\n  secret_rotation_overlap_s: 60\n", clock
        )
        old = await _create(client, url=rcv.url())
        rotated = await _call(client, "POST", f"/api/webhook-endpoints/{old['id']}/rotate")
        assert rotated["secret"].startswith("whsec_")
        assert rotated["secret"] != old["secret"]
        await _subscribe(client, "sub_rot_1")
        (during,) = await rcv.wait_count(1)
        clock.advance(61)  # the overlap is over
        await _subscribe(client, "sub_rot_2")
        after = (await rcv.wait_count(2))[1]
    Webhook(old["secret"]).verify(during.body, dict(during.headers))  # a receiver not yet updated
    Webhook(rotated["secret"]).verify(during.body, dict(during.headers))  # one already updated
    Webhook(rotated["secret"]).verify(after.body, dict(after.headers))
    with pytest.raises(WebhookVerificationError):
        Webhook(old["secret"]).verify(after.body, dict(after.headers))


async def test_api_rotate_accepts_a_given_secret_and_rejects_garbage(client: Client) -> None:
    created = await _create(client)
    path = f"/api/webhook-endpoints/{created['id']}/rotate"
    secret = generate_endpoint_secret()
    assert (await _call(client, "POST", path, {"secret": secret}))["secret"] == secret
    await _call(client, "POST", path, {"secret": "not-a-standard-webhooks-secret"}, status=400)
    await _call(client, "POST", path, {"nope": 1}, status=400)
    resp = await client.post(path, data=b"[1]", headers=admin_headers())
    assert resp.status == 400


# -- events, resend, attempts ---------------------------------------------------------------


async def _subscribe(client: Client, sub_id: str) -> list[str]:
    status, body = await post_stripe(
        client, stripe_event("customer.subscription.created", subscription(sub_id))
    )
    assert status == 200, body
    ids: list[str] = body["events"]
    return ids


async def test_api_events_list_newest_first_with_type_filter(client: Client) -> None:
    first = await _subscribe(client, "sub_ev_1")
    second = await _subscribe(client, "sub_ev_2")
    listed = await _call(client, "GET", "/api/events?size=3")
    assert listed["count"] == 4
    assert [e["id"] for e in listed["list"]][:2] == list(reversed(second))
    started = await _call(client, "GET", f"/api/events?type={STARTED}")
    assert started["count"] == 2
    assert {e["type"] for e in started["list"]} == {STARTED}
    assert {e["id"] for e in started["list"]} < set(first + second)
    page2 = await _call(client, "GET", "/api/events?page=2&size=3")
    assert [e["id"] for e in page2["list"]] == [first[0]]


async def test_api_event_detail_resend_and_attempts(client: Client) -> None:
    async with running(ok()) as (rcv,):
        ep = await _create(client, url=rcv.url(), enabled_events=["customer.subscription.*"])
        ids = await _subscribe(client, "sub_resend")
        await rcv.wait_count(2)
        event_id = ids[0]
        resent = await _call(client, "POST", f"/api/events/{event_id}/resend")
        assert resent["event_id"] == event_id
        assert len(resent["deliveries"]) == 1  # the API endpoint; the YAML one wants `started`
        reqs = await rcv.wait_count(3)
        assert reqs[2].headers["webhook-id"] == event_id
        attempts = await _wait_attempts(client, event_id, 2)
        detail = await _call(client, "GET", f"/api/events/{event_id}")
    assert detail["id"] == event_id
    assert len(detail["attempts"]) == 2
    for a in attempts:
        assert a["event_id"] == event_id
        assert a["webhook_endpoint_id"] == ep["id"]
        assert (a["status"], a["response_status"], a["response_body"]) == ("succeeded", 200, "ok")
        assert a["retry_count"] == 0  # each delivery succeeded at its first attempt


async def _wait_attempts(client: Client, event_id: str, n: int) -> list[dict[str, Any]]:
    from tests.receivers import wait_until

    found: list[dict[str, Any]] = []

    async def done() -> bool:
        data = await _call(client, "GET", f"/api/webhook-attempts?event_id={event_id}")
        found[:] = data["list"]
        return len(found) >= n and all(a["status"] != "pending" for a in found)

    await wait_until(done, f"{n} finished attempts for {event_id}")
    return found


async def test_api_resend_errors(client: Client) -> None:
    ids = await _subscribe(client, "sub_resend_err")
    missing = await _call(client, "POST", "/api/events/evt_nope/resend", status=404)
    assert _error(missing)[0] == "not_found"
    await _call(
        client, "POST", f"/api/events/{ids[0]}/resend", {"endpoint_id": "we_nope"}, status=404
    )
    await _call(client, "POST", f"/api/events/{ids[0]}/resend", {"endpoint_id": 5}, status=400)
    await _call(client, "GET", "/api/events/evt_nope", status=404)
