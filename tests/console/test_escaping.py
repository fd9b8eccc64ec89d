"""Hostile input renders inert: provider payloads, endpoint fields, receiver answers and the
query string are all escaped, and no page carries a script or a javascript: link."""

from __future__ import annotations

import re
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import BridgeFactory, admin_headers, post_stripe, stripe_event
from tests.console.conftest import signin
from tests.receivers import always, running, subscription

Client = TestClient[Any, Any]

SCRIPT = "<script>alert('pwned')</script>"
IMG = '<img src=x onerror="alert(1)">'
JS_URL = "javascript:alert(document.cookie)"
HOSTILE = {"note": SCRIPT, "html": IMG, "link": JS_URL, "quote": '"><b>x</b>'}


def assert_inert(html: str) -> None:
    """No markup of ours carries the payload: it only appears escaped."""
    assert SCRIPT not in html and "<script" not in html.lower()
    assert "<img" not in html.lower() and "<i>" not in html
    assert not re.search(r"""(href|src|action)\s*=\s*["']?\s*javascript:""", html, re.I)
    assert "<b>x</b>" not in html


def _hostile_subscription() -> dict[str, Any]:
    return {**subscription("sub_evil"), "customer": "cus_<i>evil</i>", "metadata": HOSTILE}


async def test_hostile_provider_payload_renders_escaped(make_bridge: BridgeFactory) -> None:
    _, client = await make_bridge()
    await signin(client)
    status, body = await post_stripe(
        client, stripe_event("customer.subscription.created", _hostile_subscription())
    )
    assert status == 200
    listing = await (await client.get("/console/events")).text()
    assert_inert(listing)
    assert "cus_&lt;i&gt;evil&lt;/i&gt;" in listing
    detail = await (await client.get(f"/console/events/{body['events'][0]}")).text()
    assert_inert(detail)
    assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in detail
    filtered = await (await client.get("/console/events?customer=cus_<i>evil</i>")).text()
    assert_inert(filtered)
    assert "cus_&lt;i&gt;evil&lt;/i&gt;" in filtered


async def test_hostile_endpoint_fields_and_answers_render_escaped(
    make_bridge: BridgeFactory,
) -> None:
    async with running(always(500, SCRIPT + IMG)) as (rx,):
        _, client = await make_bridge()
        await signin(client)
        resp = await client.post(
            "/api/webhook-endpoints",
            json={
                "url": rx.url("/hook?x=<script>"),
                "enabled_events": ["*"],
                "description": SCRIPT,
                "metadata": HOSTILE,
            },
            headers=admin_headers(),
        )
        assert resp.status == 200, await resp.text()
        eid = (await resp.json())["id"]
        await post_stripe(client, stripe_event("customer.subscription.created", subscription("s")))
        await rx.wait_count(1)
        pages = [
            await (await client.get(path)).text()
            for path in (
                f"/console/endpoints/{eid}",
                "/console/endpoints",
                f"/console/endpoints/{eid}/edit",
            )
        ]
    for html in pages:
        assert_inert(html)
    assert "&lt;script&gt;" in pages[0]


async def test_hostile_query_string_renders_escaped(make_bridge: BridgeFactory) -> None:
    _, client = await make_bridge()
    await signin(client)
    query = (
        "type=%22%3E%3Cscript%3Ealert(1)%3C/script%3E&invoice=%3Cimg%20src=x%20onerror=alert(1)%3E"
    )
    html = await (await client.get("/console/events?" + query)).text()
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&#34;&gt;&lt;script&gt;" in html


async def test_every_page_forbids_scripts(make_bridge: BridgeFactory) -> None:
    _, client = await make_bridge()
    await signin(client)
    for path in ("/console/", "/console/events", "/console/endpoints", "/console/signin"):
        resp = await client.get(path)
        csp = resp.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["Cache-Control"] == "no-store"
