"""Every console page and action through the real application (aiohttp test client)."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import BridgeFactory, admin_headers, post_stripe, stripe_event
from tests.console.conftest import csrf_of, field_of, signin
from tests.receivers import always, fail_first, running, subscription, wait_until

Client = TestClient[Any, Any]


def _yaml_endpoint(endpoint_id: str, url: str) -> str:
    """Config YAML with one endpoint subscribed to everything (make_bridge formats it)."""
    return (
        f"endpoints:\n  - {{{{id: {endpoint_id}, url: '{url}', enabled_events: ['*'],"
        " secret: whsec_ZGV2LWJpbGxpbmctc2VjcmV0LWNoYW5nZS1tZQ==}}\n"
    )


def _sub(sub_id: str, customer: str) -> dict[str, Any]:
    return {**subscription(sub_id), "customer": customer}


async def _ingest(client: Client, event_type: str, obj: dict[str, Any], **kw: Any) -> list[str]:
    status, body = await post_stripe(client, stripe_event(event_type, obj, **kw))
    assert status == 200, body
    return list(body["events"])


def _event_ids(html: str) -> list[str]:
    return re.findall(r'class="event-link">(evt_[0-9a-f]+)<', html)


async def test_overview_counts_and_chart(make_bridge: BridgeFactory) -> None:
    async with running(always(500, "down")) as (rx,):
        _, client = await make_bridge(_yaml_endpoint("we_down", rx.url()))
        await signin(client)
        await _ingest(client, "customer.subscription.created", _sub("sub_1", "cus_1"))
        await rx.wait_count(2)
        page = await client.get("/console/")
        html = await page.text()
    assert page.status == 200
    assert re.search(r'id="events-today">2<', html)
    assert re.search(r'id="pending">2<', html)  # both retrying
    assert re.search(r'id="dead">0<', html) and re.search(r'id="disabled">0<', html)
    assert 'id="activity-chart"' in html and html.count("<rect ") == 24
    assert "2 events" in html


async def test_events_filter_by_every_field(make_bridge: BridgeFactory) -> None:
    _, client = await make_bridge()
    await signin(client)
    a = await _ingest(client, "customer.subscription.created", _sub("sub_a", "cus_a"))
    b = await _ingest(client, "customer.subscription.created", _sub("sub_b", "cus_b"))

    async def ids(query: str) -> list[str]:
        resp = await client.get("/console/events?" + query)
        assert resp.status == 200
        return _event_ids(await resp.text())

    assert await ids("") == [*reversed(b), *reversed(a)]
    assert await ids("customer=cus_a") == list(reversed(a))
    assert await ids("subscription=sub_b") == list(reversed(b))
    assert await ids("type=customer.subscription.started&customer=cus_b") == [b[1]]
    assert await ids("source=stripe") == [*reversed(b), *reversed(a)]
    assert await ids("source=payment_kit") == []
    assert await ids("from=2000-01-01T00:00&to=2001-01-01T00:00") == []
    assert len(await ids("from=2000-01-01T00:00")) == 4
    assert await ids("invoice=in_none") == []
    bad = await client.get("/console/events?source=paypal&from=soon")
    assert "source must be one of" in await bad.text()


async def test_events_page_through_keyset_cursors(make_bridge: BridgeFactory) -> None:
    _, client = await make_bridge()
    await signin(client)
    made: list[str] = []
    for i in range(30):  # 60 events: two pages of 50
        made += await _ingest(client, "customer.subscription.created", _sub(f"sub_{i}", "cus_p"))
    first = await (await client.get("/console/events?customer=cus_p")).text()
    assert _event_ids(first) == list(reversed(made))[:50]
    next_url = re.search(r'href="([^"]+)" id="next-page"', first)
    assert next_url and "customer=cus_p" in next_url.group(1)
    second = await (await client.get(next_url.group(1).replace("&amp;", "&"))).text()
    assert _event_ids(second) == list(reversed(made))[50:]
    assert 'id="next-page"' not in second


async def test_event_detail_shows_json_provider_event_and_attempts(
    make_bridge: BridgeFactory,
) -> None:
    async with running(always(503, "try later")) as (rx,):
        _, client = await make_bridge(_yaml_endpoint("we_rx", rx.url()))
        await signin(client)
        ids = await _ingest(
            client, "customer.subscription.created", _sub("sub_d", "cus_d"), event_id="evt_src_1"
        )
        await rx.wait_count(2)
        resp = await client.get(f"/console/events/{ids[0]}")
        html = await resp.text()
    assert resp.status == 200
    assert 'id="event-json"' in html and "&#34;sub_d&#34;" in html
    assert 'id="provider-json"' in html and "evt_src_1" in html
    assert "we_rx" in html and "503" in html and "try later" in html
    missing = await client.get("/console/events/evt_nope")
    assert missing.status == 404


async def test_resend_to_all_and_to_one_endpoint(make_bridge: BridgeFactory) -> None:
    async with running(always(200)) as (rx,):
        bridge, client = await make_bridge(_yaml_endpoint("we_rx", rx.url()))
        csrf = await signin(client)
        ids = await _ingest(client, "customer.subscription.created", _sub("sub_r", "cus_r"))
        await rx.wait_count(2)
        resp = await client.post(f"/console/events/{ids[0]}/resend", data={"csrf": csrf})
        assert resp.status == 200 and "Resent: 1 deliveries queued" in await resp.text()
        resp = await client.post(
            f"/console/events/{ids[0]}/resend", data={"csrf": csrf, "endpoint_id": "we_rx"}
        )
        assert "Resent: 1 deliveries queued" in await resp.text()
        await rx.wait_count(4)
        unknown = await client.post(
            f"/console/events/{ids[0]}/resend", data={"csrf": csrf, "endpoint_id": "we_x"}
        )
        assert unknown.status == 404
        attempts = await bridge.store.list_attempts(event_id=ids[0])
        assert attempts.count == 3


async def test_endpoint_lifecycle(make_bridge: BridgeFactory) -> None:
    async with running(always(200, "fine")) as (rx,):
        bridge, client = await make_bridge()
        csrf = await signin(client)
        form = await client.get("/console/endpoints/new")
        assert form.status == 200 and "customer.subscription.*" in await form.text()
        created = await client.post(
            "/console/endpoints",
            data={
                "csrf": csrf,
                "url": rx.url(),
                "enabled_events": ["customer.subscription.*", "invoice.paid"],
                "description": "billing",
                "metadata": '{"team": "billing"}',
                "signature": "standard",
            },
        )
        html = await created.text()
        assert created.status == 200
        secret = re.search(r'id="secret">(whsec_[^<]+)<', html)
        assert secret, html
        endpoint_id = re.search(r'id="endpoint-link">(we_[^<]+)<', html)
        assert endpoint_id
        eid = endpoint_id.group(1)
        sub = await bridge.store.get_subscriber(eid)
        assert sub is not None and sub.secret == secret.group(1)
        assert sub.metadata == {"team": "billing"} and sub.description == "billing"

        detail = await (await client.get(f"/console/endpoints/{eid}")).text()
        assert secret.group(1) not in detail  # shown once, never again
        listing = await (await client.get("/console/endpoints")).text()
        assert eid in listing and secret.group(1) not in listing

        tested = await client.post(f"/console/endpoints/{eid}/test", data={"csrf": csrf})
        assert "Delivered" in await tested.text()
        await rx.wait_count(1)

        edit = await client.get(f"/console/endpoints/{eid}/edit")
        assert edit.status == 200
        saved = await client.post(
            f"/console/endpoints/{eid}",
            data={"csrf": csrf, "url": rx.url("/v2"), "enabled_events": ["*"], "metadata": ""},
        )
        assert "Endpoint saved." in await saved.text()
        sub = await bridge.store.get_subscriber(eid)
        assert sub is not None and sub.url == rx.url("/v2") and sub.enabled_events == ["*"]

        off = await client.post(f"/console/endpoints/{eid}/disable", data={"csrf": csrf})
        assert "Endpoint disabled" in await off.text()
        on = await client.post(f"/console/endpoints/{eid}/enable", data={"csrf": csrf})
        assert "Endpoint enabled." in await on.text()

        rotated = await client.post(f"/console/endpoints/{eid}/rotate", data={"csrf": csrf})
        new_secret = re.search(r'id="secret">(whsec_[^<]+)<', await rotated.text())
        assert new_secret and new_secret.group(1) != secret.group(1)
        sub = await bridge.store.get_subscriber(eid)
        assert sub is not None and sub.previous_secret == secret.group(1)

        gone = await client.post(
            f"/console/endpoints/{eid}/delete", data={"csrf": csrf, "confirm": "yes"}
        )
        assert "Endpoint deleted." in await gone.text()
        assert await bridge.store.get_subscriber(eid) is None
        assert (await client.get(f"/console/endpoints/{eid}")).status == 404


async def test_refused_endpoint_form_shows_why_and_writes_nothing(
    make_bridge: BridgeFactory,
) -> None:
    bridge, client = await make_bridge()
    csrf = await signin(client)
    for data, why in (
        ({"url": "ftp://x.example/", "enabled_events": ["*"]}, "url"),
        ({"url": "https://x.example/", "enabled_events": ["no.such.type"]}, "no.such.type"),
        ({"url": "https://x.example/", "enabled_events": ["*"], "metadata": "[1]"}, "metadata"),
        ({"url": "https://x.example/", "enabled_events": ["*"], "metadata": "{"}, "metadata"),
    ):
        resp = await client.post("/console/endpoints", data={"csrf": csrf, **data})
        assert resp.status == 400
        assert why in await resp.text()
    assert (await bridge.store.list_subscribers(kind="endpoint")).count == 0


async def test_yaml_endpoints_are_read_only_with_the_reason(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge(_yaml_endpoint("we_yaml", "https://billing.example/hook"))
    csrf = await signin(client)
    html = await (await client.get("/console/endpoints/we_yaml")).text()
    assert 'id="read-only"' in html and "YAML config" in html
    assert 'id="rotate"' not in html and 'id="delete"' not in html
    for action in ("rotate", "disable", "delete"):
        resp = await client.post(f"/console/endpoints/we_yaml/{action}", data={"csrf": csrf})
        assert resp.status == 409 and "YAML config" in await resp.text()
    edit = await client.get("/console/endpoints/we_yaml/edit")
    assert 'id="read-only"' in await edit.text()
    sub = await bridge.store.get_subscriber("we_yaml")
    assert sub is not None and sub.status == "enabled"


async def test_endpoint_detail_shows_attempts_and_failure_streak(
    make_bridge: BridgeFactory,
) -> None:
    async with running(always(500, "<b>boom</b>")) as (rx,):
        bridge, client = await make_bridge()
        await signin(client)
        resp = await client.post(
            "/api/webhook-endpoints",
            json={"url": rx.url(), "enabled_events": ["*"]},
            headers=admin_headers(),
        )
        eid = (await resp.json())["id"]
        await _ingest(client, "customer.subscription.created", _sub("sub_f", "cus_f"))
        await rx.wait_count(2)

        async def streak() -> bool:
            sub = await bridge.store.get_subscriber(eid)
            return sub is not None and sub.failing_since is not None

        await wait_until(streak, "the failure streak is recorded")
        html = await (await client.get(f"/console/endpoints/{eid}")).text()
        listing = await (await client.get("/console/endpoints")).text()
    assert "&lt;b&gt;boom&lt;/b&gt;" in html and "<b>boom" not in html
    assert 'class="attempt failed"' in html and "500" in html
    assert "status failed" in listing


async def test_unknown_pages_404(make_bridge: BridgeFactory) -> None:
    _, client = await make_bridge()
    csrf = await signin(client)
    assert (await client.get("/console/endpoints/we_nope")).status == 404
    assert (await client.get("/console/endpoints/we_nope/edit")).status == 404
    for action in ("rotate", "enable", "test", "delete"):
        resp = await client.post(f"/console/endpoints/we_nope/{action}", data={"csrf": csrf})
        assert resp.status == 404
    resp = await client.post("/console/endpoints/we_nope", data={"csrf": csrf})
    assert resp.status == 404
    css = await client.get("/console/static/console.css")
    assert css.status == 200 and css.content_type == "text/css"
    assert csrf_of(await (await client.get("/console/endpoints")).text()) == csrf


async def test_dead_deliveries_list_resend_and_recover(make_bridge: BridgeFactory) -> None:
    async with running(fail_first(8, 503, "overloaded")) as (rx,):
        bridge, client = await make_bridge()
        csrf = await signin(client)
        resp = await client.post(
            "/api/webhook-endpoints",
            json={"url": rx.url(), "enabled_events": ["customer.subscription.started"]},
            headers=admin_headers(),
        )
        eid = (await resp.json())["id"]
        ids = await _ingest(client, "customer.subscription.created", _sub("sub_x", "cus_x"))
        await _ingest(client, "customer.subscription.created", _sub("sub_y", "cus_y"))

        async def both_dead() -> bool:
            return (await bridge.store.counts())["dead"] == 2

        await wait_until(both_dead, "two dead deliveries")  # 4 attempts each: 8 failures
        html = await (await client.get(f"/console/dead?endpoint={eid}")).text()
        assert html.count('class="dead-delivery"') == 2 and "HTTP 503" in html
        assert ids[1] in html  # the started event is the one the endpoint takes

        preview = await client.post(
            "/console/dead/recover/preview", data={"csrf": csrf, "endpoint_id": eid, "since": "1h"}
        )
        page = await preview.text()
        assert re.search(r'id="count">2<', page), page
        assert (await bridge.store.counts())["dead"] == 2  # counted, nothing changed
        done = await client.post(
            "/console/dead/recover",
            data={"csrf": csrf, "endpoint_id": eid, "since": field_of(page, "since")},
        )
        assert "Queued 2 deliveries" in await done.text()
        await rx.wait_count(10)
        bad = await client.post(
            "/console/dead/recover/preview", data={"csrf": csrf, "endpoint_id": eid, "since": "x"}
        )
        assert bad.status == 400 and "since" in await bad.text()
        unknown = await client.post(
            "/console/dead/recover", data={"csrf": csrf, "endpoint_id": "we_no", "since": "1h"}
        )
        assert unknown.status == 404
        forged = await client.post(
            "/console/dead/recover", data={"endpoint_id": eid, "since": "1h"}
        )
        assert forged.status == 403
