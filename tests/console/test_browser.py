"""The console in a real headless Chromium against ``paybridge serve`` with real traffic:
signed Stripe events in, real local receivers out. Each test saves a screenshot (see
:func:`tests.console.browser.shots_dir`); without Chromium they skip, saying why."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.support.select import Select
from standardwebhooks import Webhook

from tests.conftest import ADMIN_KEY, STRIPE_SECRET, stripe_event, stripe_headers
from tests.console.browser import Browser, find_chromium, shots_dir, start_browser
from tests.receivers import Receiver, Script, always, fail_first, ok, running, subscription
from tests.reliability.harness import Service, free_port, write_config

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@dataclass
class Served:
    service: Service
    browser: Browser

    async def post_event(self, event: dict[str, Any]) -> list[str]:
        """POST a signed Stripe event to the service; the canonical event ids."""
        body = orjson.dumps(event)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                self.service.url + "/webhooks/stripe", data=body, headers=stripe_headers(body)
            ) as resp,
        ):
            assert resp.status == 200, await resp.text()
            return list((await resp.json())["events"])

    async def health(self) -> dict[str, int]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.service.url + "/healthz") as resp,
        ):
            store: dict[str, int] = (await resp.json())["store"]
            return store


def _config(tmp_path: Path) -> dict[str, Any]:
    return {
        "server": {"host": "127.0.0.1", "shutdown_timeout_s": 2},
        "store": {"url": f"sqlite:///{tmp_path / 'paybridge.db'}"},
        "admin": {"api_keys": [ADMIN_KEY]},
        "sources": {"stripe": {"signing_secrets": [STRIPE_SECRET], "correlation_window_s": 0}},
        "delivery": {
            "allow_private_networks": True,
            "timeout_s": 2,
            "schedule_s": [0.2, 0.2],
            "jitter": 0,
            "poll_interval_s": 0.05,
        },
    }


@pytest.fixture
async def served(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    found = find_chromium()
    if isinstance(found, str):
        pytest.skip(found)
    config = write_config(tmp_path / "paybridge.yaml", _config(tmp_path))
    service = Service(config, free_port(), tmp_path / "service.log").start()
    try:
        await service.ready()
        shots = shots_dir(tmp_path / "screenshots")
        browser = await asyncio.to_thread(start_browser, service.url, shots)
        try:
            yield Served(service, browser)
            await browser.screenshot(request.node.name)
        finally:
            await asyncio.to_thread(browser.close)
    finally:
        service.terminate()
        service.wait(15)


async def _select(b: Browser, css: str, *values: str) -> None:
    element = await b.find(css)

    def pick() -> None:
        select = Select(element)
        for value in values:
            select.select_by_value(value)

    await b.run(pick)


async def _create_endpoint(b: Browser, url: str, *events: str) -> tuple[str, str]:
    """Create an endpoint through the form; ``(endpoint id, secret shown once)``."""
    await b.open("/console/endpoints/new")
    await b.type("#url", url)
    await _select(b, "#enabled_events", *(events or ("*",)))
    await b.type("#description", "billing service")
    await b.click("#save")
    secret = await b.text("#secret")
    endpoint_id = await b.text("#endpoint-link")
    assert secret.startswith("whsec_") and endpoint_id.startswith("we_")
    return endpoint_id, secret


async def _until_text(b: Browser, path: str, css: str, needle: str) -> str:
    """Reload ``path`` until ``css`` contains ``needle`` (bounded)."""
    for _ in range(100):
        await b.open(path)
        found = await b.all(css)
        texts = [await b.run(lambda e=e: e.text) for e in found]
        if any(needle in t for t in texts):
            return "\n".join(texts)
        await asyncio.sleep(0.1)
    raise AssertionError(f"{needle!r} never appeared in {css} on {path}")


async def test_signed_out_redirect_then_signin_and_signout(served: Served) -> None:
    b = served.browser
    await b.open("/console/events?type=invoice.paid")
    assert (await b.path()).startswith("/console/signin?next=")
    await b.type("#key", "not-the-key")
    await b.click("#signin")
    assert "not an admin key" in await b.text("#error")
    await b.type("#key", ADMIN_KEY)
    await b.click("#signin")
    await b.find("#event-filters")
    assert await b.path() == "/console/events?type=invoice.paid"
    cookie = await b.run(b.driver.get_cookie, "pb_console")
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert ADMIN_KEY not in await b.run(lambda: b.driver.current_url)
    await b.click("#signout")
    await b.find("#signin-form")
    await b.open("/console/endpoints")
    assert (await b.path()).startswith("/console/signin?next=")


async def test_create_endpoint_see_event_and_attempt(served: Served) -> None:
    b = served.browser
    async with running(ok(), always(500, "billing is down")) as (good, bad):
        await b.signin(ADMIN_KEY)
        good_id, _ = await _create_endpoint(b, good.url(), "customer.subscription.*")
        await b.screenshot("endpoint-created")
        bad_id, _ = await _create_endpoint(b, bad.url(), "*")
        for i in range(3):
            sub = {**subscription(f"sub_tour{i}"), "customer": f"cus_tour{i}"}
            await served.post_event(stripe_event("customer.subscription.created", sub))
        await good.wait_count(6)
        await bad.wait_count(6)
        rows = await _until_text(b, f"/console/endpoints/{good_id}", "#attempts", "succeeded")
        assert "200" in rows
        await b.screenshot("endpoint")
        await _until_text(b, f"/console/endpoints/{bad_id}", "#attempts", "billing is down")
        assert "failed" in await b.text("#attempts")
        await b.screenshot("endpoint-failing")
        await b.open("/console/events?customer=cus_tour1")
        links = await b.all(".event-link")
        assert len(links) == 2
        await b.run(links[0].click)
        deliveries = await b.text(".card .delivery")
        assert good_id in deliveries or bad_id in deliveries
        await b.screenshot("event")
        await b.open("/console/")
        assert int(await b.text("#events-today")) == 6
        await b.screenshot("overview")


async def test_resend_and_rotate(served: Served) -> None:
    b = served.browser
    async with running(ok()) as (rx,):
        await b.signin(ADMIN_KEY)
        endpoint_id, secret = await _create_endpoint(b, rx.url())
        ids = await served.post_event(
            stripe_event("customer.subscription.created", subscription("sub_resend"))
        )
        await rx.wait_count(len(ids))
        await b.open(f"/console/events/{ids[0]}")
        await b.click("#resend")
        assert "Resent: 1 deliveries queued" in await b.text("#notice")
        sent = await rx.wait_count(len(ids) + 1)
        assert sent[-1].headers["webhook-id"] == ids[0]
        Webhook(secret).verify(sent[-1].body, dict(sent[-1].headers))

        await b.open(f"/console/endpoints/{endpoint_id}")
        await b.click("#rotate")
        new_secret = await b.text("#secret")
        assert new_secret.startswith("whsec_") and new_secret != secret
        await b.open(f"/console/endpoints/{endpoint_id}")
        assert new_secret not in await b.page()  # shown once
        await b.open(f"/console/events/{ids[0]}")
        await _select(b, "#resend-target", endpoint_id)
        await b.click("#resend")
        await b.find("#notice")
        sent = await rx.wait_count(len(ids) + 2)
        Webhook(new_secret).verify(sent[-1].body, dict(sent[-1].headers))


HOSTILE_SCRIPT = "<script>window.__pwned = 1</script>"
HOSTILE_IMG = '<img src=x onerror="window.__pwned = 2">'


async def test_xss_payload_is_inert(served: Served) -> None:
    b = served.browser
    await b.signin(ADMIN_KEY)
    sub = {
        **subscription("sub_xss"),
        "customer": "cus_<b>bold</b>",
        "metadata": {"note": HOSTILE_SCRIPT, "img": HOSTILE_IMG, "go": "javascript:alert(1)"},
    }
    ids = await served.post_event(stripe_event("customer.subscription.created", sub))
    for path in ("/console/events", f"/console/events/{ids[0]}"):
        await b.open(path)
        assert await b.all("script") == [] and await b.all("img") == []
        assert await b.all("main b") == []
        assert await b.run(b.driver.execute_script, "return window.__pwned === undefined")
        with pytest.raises(NoAlertPresentException):
            await b.run(lambda: b.driver.switch_to.alert.text)
    assert HOSTILE_SCRIPT in await b.text("#event-json")  # shown as text
    await b.open("/console/events")
    assert "cus_<b>bold</b>" in await b.text("#events")


def _forger(console: str, event_id: str, csrf: str | None) -> Script:
    """A page on another origin with a form posting to the console (a cross-site forgery)."""
    field = "" if csrf is None else f'<input type="hidden" name="csrf" value="{csrf}">'
    html = (
        f'<form method="post" action="{console}/console/events/{event_id}/resend">'
        f'{field}<button id="forge" type="submit">win a prize</button></form>'
    )

    async def script(_n: int, _req: web.Request) -> web.StreamResponse:
        return web.Response(text=html, content_type="text/html")

    return script


async def test_forged_form_posts_are_refused(served: Served) -> None:
    b = served.browser
    async with running(ok()) as (rx,):
        await b.signin(ADMIN_KEY)
        await _create_endpoint(b, rx.url())
        ids = await served.post_event(
            stripe_event("customer.subscription.created", subscription("sub_forge"))
        )
        await rx.wait_count(len(ids))
        before = (await served.health())["pending"], len(rx.requests)
        for csrf in (None, "guessed-token"):
            forger = Receiver(_forger(served.service.url, ids[0], csrf))
            await forger.start()
            try:
                await b.run(b.driver.get, forger.url("/prize"))
                await b.click("#forge")
                assert "stale or forged" in await b.text("#error")
            finally:
                await forger.close()
        assert ((await served.health())["pending"], len(rx.requests)) == before


async def test_recover_dead_deliveries_after_a_count(served: Served) -> None:
    b = served.browser
    async with running(fail_first(6, 502, "bad gateway")) as (rx,):
        await b.signin(ADMIN_KEY)
        endpoint_id, _ = await _create_endpoint(b, rx.url(), "customer.subscription.started")
        for sub in ("sub_dead1", "sub_dead2"):
            await served.post_event(
                stripe_event("customer.subscription.created", subscription(sub))
            )
        await rx.wait_count(6)  # three attempts each, then dead
        rows = await _until_text(b, f"/console/dead?endpoint={endpoint_id}", "#dead", "HTTP 502")
        assert rows.count("bad gateway") == 2 or rows.count("HTTP 502") == 2
        await b.screenshot("dead")
        await _select(b, "#recover-endpoint", endpoint_id)
        await b.type("#recover-since", "1h")
        await b.click("#recover-preview")
        assert await b.text("#count") == "2"
        await b.screenshot("recover-confirm")
        await b.click("#recover-confirm")
        assert "Queued 2 deliveries" in await b.text("#notice")
        await rx.wait_count(8)
        attempts = await _until_text(
            b, f"/console/endpoints/{endpoint_id}", "#attempts", "succeeded"
        )
        assert "502" in attempts
