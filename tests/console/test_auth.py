"""Console sign-in, sessions and CSRF through the real application (aiohttp test client)."""

from __future__ import annotations

import datetime as dt
import logging
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pytest_aiohttp import AiohttpClient

from bridge.console.auth import safe_next
from bridge.service import Bridge
from tests.conftest import ADMIN_KEY, BridgeFactory, make_config
from tests.console.conftest import csrf_of, field_of, signin
from tests.receivers import ManualClock

Client = TestClient[Any, Any]


async def test_console_is_off_without_an_admin_key(make_bridge: BridgeFactory) -> None:
    _, client = await make_bridge("admin:\n  api_keys: []\n")
    for path in ("/console", "/console/", "/console/signin", "/console/events"):
        assert (await client.get(path, allow_redirects=False)).status == 404
    resp = await client.post("/console/signin", data={"key": "x"})
    assert resp.status == 404


async def test_signed_out_pages_redirect_to_signin(make_bridge: BridgeFactory) -> None:
    _, client = await make_bridge()
    for path in ("/console/", "/console/events?type=invoice.paid", "/console/endpoints"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 303
        location = resp.headers["Location"]
        assert location.startswith("/console/signin?next=")
        assert "key" not in location.split("?", 1)[1].replace("next", "")
    root = await client.get("/console", allow_redirects=False)
    assert root.status == 303 and root.headers["Location"] == "/console/"


async def test_signin_sets_a_strict_httponly_expiring_cookie(make_bridge: BridgeFactory) -> None:
    _, client = await make_bridge()
    form = await client.get("/console/signin")
    assert form.headers["Content-Security-Policy"].startswith("default-src 'none'")
    token = field_of(await form.text(), "signin_csrf")
    resp = await client.post(
        "/console/signin",
        data={"key": ADMIN_KEY, "signin_csrf": token, "next": "/console/events"},
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/console/events"
    cookie = next(c for c in resp.headers.getall("Set-Cookie") if c.startswith("pb_console="))
    attrs = {a.strip().split("=")[0].lower() for a in cookie.split(";")}
    assert {"httponly", "max-age", "path", "samesite"} <= attrs
    assert "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "secure" not in attrs  # plain HTTP here; see the TLS test
    assert (await client.get("/console/events")).status == 200


async def test_wrong_key_is_refused_without_a_session(make_bridge: BridgeFactory) -> None:
    _, client = await make_bridge()
    form = await client.get("/console/signin")
    token = field_of(await form.text(), "signin_csrf")
    for key in ("wrong-key", "", ADMIN_KEY[:-1]):
        resp = await client.post(
            "/console/signin", data={"key": key, "signin_csrf": token}, allow_redirects=False
        )
        assert resp.status == 401
        page = await resp.text()
        assert "not an admin key" in page
        token = field_of(page, "signin_csrf")  # the refusal is a fresh form
        assert not any(c.startswith("pb_console=") for c in resp.headers.getall("Set-Cookie", []))
    events = await client.get("/console/events", allow_redirects=False)
    assert events.status == 303


async def test_signin_form_needs_its_csrf_token(make_bridge: BridgeFactory) -> None:
    _, client = await make_bridge()
    # No form token and no cookie: a cross-site form post.
    resp = await client.post("/console/signin", data={"key": ADMIN_KEY}, allow_redirects=False)
    assert resp.status == 403
    form = await client.get("/console/signin")
    token = field_of(await form.text(), "signin_csrf")
    resp = await client.post(
        "/console/signin",
        data={"key": ADMIN_KEY, "signin_csrf": token + "x"},
        allow_redirects=False,
    )
    assert resp.status == 403
    assert (await client.get("/console/events", allow_redirects=False)).status == 303


async def test_signout_needs_the_csrf_token_and_ends_the_session(
    make_bridge: BridgeFactory,
) -> None:
    _, client = await make_bridge()
    csrf = await signin(client)
    forged = await client.post("/console/signout", data={}, allow_redirects=False)
    assert forged.status == 403
    assert (await client.get("/console/events")).status == 200  # still signed in
    resp = await client.post("/console/signout", data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/console/signin"
    assert (await client.get("/console/events", allow_redirects=False)).status == 303


async def test_session_expires_on_the_bridge_clock(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    clock = ManualClock()
    bridge = Bridge(make_config(tmp_path), clock=clock)
    client = await aiohttp_client(bridge.web_app())
    await signin(client)
    clock.advance(8 * 3600 - 60)
    assert (await client.get("/console/events", allow_redirects=False)).status == 200
    clock.advance(120)
    assert (await client.get("/console/events", allow_redirects=False)).status == 303


async def test_forged_posts_change_nothing(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge()
    csrf = await signin(client)
    for data in ({}, {"csrf": ""}, {"csrf": csrf[:-2] + "xx"}):
        resp = await client.post(
            "/console/events/evt_missing/resend", data=data, allow_redirects=False
        )
        assert resp.status == 403
        assert "stale or forged" in await resp.text()
    # The right token reaches the handler (which then finds no such event).
    resp = await client.post("/console/events/evt_missing/resend", data={"csrf": csrf})
    assert resp.status == 404
    assert (await bridge.store.counts())["pending"] == 0


async def test_a_token_of_another_session_is_refused(make_bridge: BridgeFactory) -> None:
    _, first = await make_bridge()
    csrf_a = await signin(first)
    first.session.cookie_jar.clear()
    csrf_b = await signin(first)
    assert csrf_a != csrf_b
    resp = await first.post("/console/signout", data={"csrf": csrf_a}, allow_redirects=False)
    assert resp.status == 403


async def test_nothing_secret_is_logged(
    make_bridge: BridgeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    _, client = await make_bridge()
    with caplog.at_level(logging.DEBUG):
        csrf = await signin(client)
        await client.post("/console/signout", data={"csrf": csrf})
    cookie = [m for m in caplog.messages if "signed in" in m]
    assert cookie, "sign-in is logged"
    assert ADMIN_KEY not in caplog.text and csrf not in caplog.text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/console/events?type=x", "/console/events?type=x"),
        ("/console", "/console"),
        ("//evil.example/console/", "/console/"),
        ("https://evil.example/", "/console/"),
        ("/console/..\\evil", "/console/"),
        ("/consoles", "/console/"),
        (None, "/console/"),
    ],
)
def test_safe_next_never_leaves_the_console(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


def _tls_context(tmp_path: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return ctx


async def _over_tls(
    tmp_path: Path, run: Callable[[aiohttp.ClientSession, str], Awaitable[None]]
) -> None:
    bridge = Bridge(make_config(tmp_path))
    runner = web.AppRunner(bridge.web_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=_tls_context(tmp_path))
    await site.start()
    port = runner.addresses[0][1]
    client_ctx = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    client_ctx.check_hostname = False
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=client_ctx),
            cookie_jar=aiohttp.CookieJar(unsafe=True),
        ) as session:
            await run(session, f"https://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


async def test_cookie_is_secure_when_the_request_came_over_tls(tmp_path: Path) -> None:
    async def run(session: aiohttp.ClientSession, base: str) -> None:
        async with session.get(base + "/console/signin") as form:
            token = field_of(await form.text(), "signin_csrf")
        async with session.post(
            base + "/console/signin",
            data={"key": ADMIN_KEY, "signin_csrf": token},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 303
            cookie = next(
                c for c in resp.headers.getall("Set-Cookie") if c.startswith("pb_console=")
            )
            assert "Secure" in cookie and "HttpOnly" in cookie
        async with session.get(base + "/console/events") as page:
            assert page.status == 200
            assert csrf_of(await page.text())

    await _over_tls(tmp_path, run)


async def test_repeated_wrong_keys_are_throttled(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    clock = ManualClock()
    client = await aiohttp_client(Bridge(make_config(tmp_path), clock=clock).web_app())
    form = await client.get("/console/signin")
    token = field_of(await form.text(), "signin_csrf")
    statuses = []
    for key in ["wrong"] * 10 + [ADMIN_KEY]:
        resp = await client.post(
            "/console/signin", data={"key": key, "signin_csrf": token}, allow_redirects=False
        )
        statuses.append(resp.status)
        if resp.status != 303:
            token = field_of(await resp.text(), "signin_csrf")
    assert statuses == [401] * 10 + [429]  # even the right key waits
    clock.advance(61)
    resp = await client.post(
        "/console/signin", data={"key": ADMIN_KEY, "signin_csrf": token}, allow_redirects=False
    )
    assert resp.status == 303
