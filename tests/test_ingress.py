"""The lean ingress of ``paybridge serve`` (bridge.ingress): the same answers as the aiohttp
routes, byte framing it serves itself, and the hand-off to aiohttp of everything else.

Every test talks raw HTTP/1.1 over 127.0.0.1 sockets to a real listener."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from bridge import ingress
from bridge.errors import StoreError
from bridge.ingress import IngressSite, _parse_head
from bridge.service import Bridge
from tests.conftest import make_config, stripe_event, stripe_headers
from tests.receivers import subscription

Response = tuple[int, dict[str, str], bytes]


class Listener:
    """A started Bridge served on 127.0.0.1, on the lean site or on aiohttp's own."""

    def __init__(self, bridge: Bridge, runner: web.AppRunner, site: web.BaseSite, port: int):
        self.bridge, self.runner, self.site, self.port = bridge, runner, site, port

    @property
    def lean_connections(self) -> int:
        assert isinstance(self.site, IngressSite)
        return len(self.site._front.connections)


Start = Callable[..., Awaitable[Listener]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    runners: list[web.AppRunner] = []

    async def factory(lean: bool = True, extra_yaml: str = "", name: str = "a") -> Listener:
        d = tmp_path / name
        d.mkdir()
        bridge = Bridge(make_config(d, extra_yaml))
        runner = web.AppRunner(bridge.web_app(), access_log=None, shutdown_timeout=5)
        await runner.setup()
        runners.append(runner)
        site: web.BaseSite
        if lean:
            site = IngressSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site.port
        else:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site.port
        return Listener(bridge, runner, site, port)

    yield factory
    for runner in runners:
        await runner.cleanup()


async def _read_response(reader: asyncio.StreamReader) -> Response:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), 10)
    return status, headers, body


@contextlib.asynccontextmanager
async def _connect(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _exchange(port: int, raw: bytes, responses: int = 1) -> list[Response]:
    async with _connect(port) as (reader, writer):
        writer.write(raw)
        return [await _read_response(reader) for _ in range(responses)]


def _request(
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    target: str = "/webhooks/stripe",
    method: str = "POST",
    version: str = "HTTP/1.1",
    length: bool = True,
) -> bytes:
    lines = [f"{method} {target} {version}", "Host: 127.0.0.1"]
    for name, value in (headers if headers is not None else stripe_headers(body)).items():
        lines.append(f"{name}: {value}")
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _signed(event_id: str = "evt_lean_1") -> bytes:
    return orjson.dumps(
        stripe_event("customer.subscription.created", subscription("sub_lean1"), event_id=event_id)
    )


def _chunked(body: bytes) -> bytes:
    lines = [
        "POST /webhooks/stripe HTTP/1.1",
        "Host: 127.0.0.1",
        "Transfer-Encoding: chunked",
        *(f"{k}: {v}" for k, v in stripe_headers(body).items()),
    ]
    half = len(body) // 2
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:half], body[half:]))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + chunks + b"0\r\n\r\n"


def _cases() -> list[tuple[str, bytes, bool]]:
    """(name, raw request, served by the lean path)."""
    ok = _signed("evt_parity_ok")
    bad_json = b'{"id": "evt_x", '
    not_object = b"[1, 2, 3]"
    big = b'{"pad": "' + b"x" * 5000 + b'"}'
    return [
        ("valid", _request(ok), True),
        ("duplicate", _request(ok), True),
        ("no signature", _request(ok, {"Content-Type": "application/json"}), True),
        ("wrong secret", _request(ok, stripe_headers(ok, "whsec_other")), True),
        ("stale", _request(ok, stripe_headers(ok, ts=int(time.time()) - 3600)), True),
        ("malformed json", _request(bad_json, stripe_headers(bad_json)), True),
        ("not an object", _request(not_object, stripe_headers(not_object)), True),
        ("too large", _request(big, stripe_headers(big)), False),
        ("payment kit off", _request(ok, target="/webhooks/payment-kit"), True),
        ("query string", _request(_signed("evt_parity_q"), target="/webhooks/stripe?x=1"), False),
        ("chunked", _chunked(_signed("evt_parity_chunked")), False),
        ("GET on the route", _request(b"", {}, method="GET"), False),
        ("no length", _request(ok, length=False), False),
        ("unknown route", _request(ok, target="/webhooks/paypal"), False),
        ("HTTP/1.0", _request(_signed("evt_parity_10"), version="HTTP/1.0"), False),
        ("health", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", False),
    ]


async def test_lean_path_answers_like_the_aiohttp_routes(start: Start) -> None:
    """Each request to the lean site and to aiohttp's own site (each with its own store):
    the same status, content type and body; and the lean path served the ones it should."""
    extra = "server: {{max_body_bytes: 4096}}"
    lean = await start(True, extra, name="lean")
    plain = await start(False, extra, name="plain")
    for name, raw, served_lean in _cases():
        async with _connect(lean.port) as (reader, writer):
            writer.write(raw)
            got = await _read_response(reader)
            await asyncio.sleep(0.01)
            kept = lean.lean_connections
        want = (await _exchange(plain.port, raw))[0]
        assert got[0] == want[0], name
        assert got[1].get("content-type") == want[1].get("content-type"), name
        if want[1]["content-type"].startswith("application/json"):
            assert orjson.loads(got[2]) == orjson.loads(want[2]), name
        else:  # aiohttp's own plain-text 400 for a request it cannot frame
            assert got[2] == want[2], name
        assert kept == (1 if served_lean else 0), name
        assert got[1]["server"] == want[1]["server"], name
    assert await lean.bridge.store.counts() == await plain.bridge.store.counts()


async def test_store_down_is_503_on_the_lean_path(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    lean = await start()

    async def down(*_a: Any, **_k: Any) -> Any:
        raise StoreError("database is locked")

    monkeypatch.setattr(lean.bridge.store, "ingest", down)
    ((status, _, body),) = await _exchange(lean.port, _request(_signed()))
    assert status == 503
    assert orjson.loads(body)["error"]["message"] == "store unavailable; retry later"
    assert "locked" not in body.decode()


async def test_keep_alive_pipelining_and_hand_off_in_order(start: Start) -> None:
    """Two provider posts and a health check written at once: three answers, in order, on
    one connection; the third hands the connection to aiohttp, which then serves a fourth."""
    lean = await start()
    raw = _request(_signed("evt_pipe_1")) + _request(_signed("evt_pipe_2"))
    raw += b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    async with _connect(lean.port) as (reader, writer):
        writer.write(raw)
        first, second, health = [await _read_response(reader) for _ in range(3)]
        writer.write(_request(_signed("evt_pipe_3")))
        fourth = await _read_response(reader)
    assert [r[0] for r in (first, second, health, fourth)] == [200, 200, 200, 200]
    assert orjson.loads(first[2])["duplicate"] is False
    assert orjson.loads(health[2])["store"]["inbox"] == 2
    assert orjson.loads(fourth[2])["duplicate"] is False
    assert (await lean.bridge.store.counts())["inbox"] == 3


async def test_request_arriving_in_small_pieces(start: Start) -> None:
    lean = await start()
    raw = _request(_signed("evt_pieces"))
    async with _connect(lean.port) as (reader, writer):
        for i in range(0, len(raw), 97):
            writer.write(raw[i : i + 97])
            await writer.drain()
            await asyncio.sleep(0)
        status, _, body = await _read_response(reader)
    assert status == 200 and orjson.loads(body)["duplicate"] is False


async def test_connection_close_is_honoured(start: Start) -> None:
    lean = await start()
    body = _signed("evt_close")
    raw = _request(body, {**stripe_headers(body), "Connection": "close"})
    async with _connect(lean.port) as (reader, writer):
        writer.write(raw)
        status, headers, _ = await _read_response(reader)
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
    assert status == 200 and headers["connection"] == "close"


async def test_odd_header_lines_go_to_aiohttp(start: Start) -> None:
    """A head the lean parser does not accept is aiohttp's to judge (here: accepted, or 400)."""
    lean = await start()
    body = _signed("evt_odd")
    ok_head = _request(body).split(b"\r\n\r\n", 1)[0]
    folded = ok_head.replace(b"Host: 127.0.0.1", b"Host: 127.0.0.1\r\n  folded")
    utf8 = ok_head + "\r\nX-Note: caf\u00e9".encode()
    no_host = ok_head.replace(b"Host: 127.0.0.1", b"X-Host: 127.0.0.1")
    two_lengths = ok_head + f"\r\nContent-Length: {len(body)}".encode()
    for raw in (folded, utf8, two_lengths, no_host):
        assert _parse_head(raw.split(b"\r\n\r\n")[0], 1 << 20) is None
    ((status, _, _),) = await _exchange(lean.port, utf8 + b"\r\n\r\n" + body)
    assert status == 200
    ((status, _, _),) = await _exchange(lean.port, two_lengths + b"\r\n\r\n" + body)
    assert status == 400  # aiohttp (llhttp) refuses a duplicate Content-Length
    ((status, _, _),) = await _exchange(lean.port, no_host + b"\r\n\r\n" + body)
    assert status == 400  # and an HTTP/1.1 request without Host


async def test_pipelined_flood_pauses_reading_and_loses_nothing(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """60 posts written at once while the first is slow to store: reading pauses past one
    request's worth of buffer, and every post is answered, in order."""
    lean = await start(extra_yaml="server: {{max_body_bytes: 2048}}")
    real = lean.bridge.store.ingest
    calls = 0

    async def slow_first(*a: Any, **k: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.3)
        return await real(*a, **k)

    monkeypatch.setattr(lean.bridge.store, "ingest", slow_first)
    raws = [_request(_signed(f"evt_flood_{i}")) for i in range(60)]
    answers = await _exchange(lean.port, b"".join(raws), responses=60)
    assert [a[0] for a in answers] == [200] * 60
    assert all(orjson.loads(a[2])["duplicate"] is False for a in answers)
    assert (await lean.bridge.store.counts())["inbox"] == 60


async def test_shutdown_answers_requests_being_stored_and_closes_idle_ones(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    lean = await start()
    real = lean.bridge.store.ingest

    async def slow(*a: Any, **k: Any) -> Any:
        await asyncio.sleep(0.3)
        return await real(*a, **k)

    monkeypatch.setattr(lean.bridge.store, "ingest", slow)
    async with _connect(lean.port) as (idle_reader, _), _connect(lean.port) as (reader, writer):
        writer.write(_request(_signed("evt_shutdown")))
        await asyncio.sleep(0.05)
        await lean.site.stop()  # what runner.cleanup() does first
        status, headers, _ = await _read_response(reader)
        assert await asyncio.wait_for(idle_reader.read(), 5) == b""
    assert status == 200 and headers["connection"] == "close"
    assert (await lean.bridge.store.counts())["inbox"] == 1


async def test_idle_connections_are_closed_after_the_keep_alive_time(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingress, "KEEPALIVE_S", 0.2)
    monkeypatch.setattr(ingress, "_SWEEP_S", 0.05)
    lean = await start()
    async with _connect(lean.port) as (reader, writer):
        writer.write(_request(_signed("evt_idle")))
        assert (await _read_response(reader))[0] == 200
        writer.write(b"POST /webhooks/stripe HTTP/1.1\r\n")  # a head that never ends
        assert await asyncio.wait_for(reader.read(), 5) == b""
    assert lean.lean_connections == 0


def test_head_parser_accepts_only_what_it_fully_understands() -> None:
    base = b"POST /webhooks/stripe HTTP/1.1\r\nHost: a\r\nContent-Length: 10"
    head = _parse_head(base + b"\r\nStripe-Signature:  t=1,v1=ab  ", 100)
    assert head is not None and head.length == 10 and head.provider == "stripe"
    assert head.headers["stripe-signature"] == "t=1,v1=ab" and not head.close
    closing = _parse_head(base + b"\r\nConnection: keep-alive, Close", 100)
    assert closing is not None and closing.close
    for bad in (
        base + b"\r\nTransfer-Encoding: chunked",
        base + b"\r\nExpect: 100-continue",
        base + b"\r\nConnection: Upgrade",
        base + b"\r\nBad Name: x",
        base + b"\r\nX: \x01",
        base.replace(b"10", b"-1"),
        base.replace(b"10", b"1e3"),
        base.replace(b"POST", b"post"),
        base.replace(b"HTTP/1.1", b"HTTP/1.0"),
        base.replace(b"/webhooks/stripe", b"/webhooks/stripe/"),
        base.replace(b"Content-Length: 10", b"X: y"),
    ):
        assert _parse_head(bad, 100) is None, bad
    assert _parse_head(base, 9) is None  # over the body limit: aiohttp answers 413


async def test_body_larger_than_the_read_buffer_then_a_small_one(start: Start) -> None:
    """A 300 KB event (over the 64 KiB read buffer, under the 1 MiB limit) on the lean path,
    then a small one on the same connection (the buffer grew, then shrank back)."""
    lean = await start()
    sub = {**subscription("sub_big"), "metadata": {f"k{i}": "v" * 900 for i in range(330)}}
    big = orjson.dumps(stripe_event("customer.subscription.created", sub, event_id="evt_big"))
    assert len(big) > 300_000
    async with _connect(lean.port) as (reader, writer):
        writer.write(_request(big))
        status, _, body = await _read_response(reader)
        assert status == 200 and len(orjson.loads(body)["events"]) == 2
        assert lean.lean_connections == 1
        writer.write(_request(_signed("evt_after_big")))
        status, _, body = await _read_response(reader)
        assert status == 200 and orjson.loads(body)["duplicate"] is False
    assert isinstance(lean.site, IngressSite)
    (conn,) = lean.site._front.connections
    assert len(conn._buf) == ingress._READ_SIZE
    worker = lean.bridge.store._worker  # type: ignore[attr-defined]
    stored = await worker.call(
        lambda c: c.execute(
            "SELECT payload FROM inbox WHERE provider_event_id = 'evt_big'"
        ).fetchone()[0]
    )
    assert bytes(stored) == big  # the bytes as sent


async def test_expect_continue_is_handed_to_aiohttp(start: Start) -> None:
    """A client that waits for ``100 Continue`` before sending its body gets it (from aiohttp,
    which the lean path hands such a request to) and then its answer."""
    lean = await start()
    body = _signed("evt_expect")
    head = _request(body, {**stripe_headers(body), "Expect": "100-continue"})[: -len(body)]
    async with _connect(lean.port) as (reader, writer):
        writer.write(head)
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        writer.write(body)
        status, _, reply = await _read_response(reader)
    assert status == 200 and orjson.loads(reply)["duplicate"] is False
    assert lean.lean_connections == 0


async def test_client_gone_while_its_request_is_stored(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider hangs up while its request is being stored: the store still finishes it
    (the provider's retry is then a duplicate), nothing is written to the closed connection,
    and the listener serves the next connection."""
    lean = await start()
    real = lean.bridge.store.ingest
    stored = asyncio.Event()

    async def slow(*a: Any, **k: Any) -> Any:
        await asyncio.sleep(0.2)
        try:
            return await real(*a, **k)
        finally:
            stored.set()

    monkeypatch.setattr(lean.bridge.store, "ingest", slow)
    raw = _request(_signed("evt_gone"))
    async with _connect(lean.port) as (_, writer):
        writer.write(raw)
        await writer.drain()
        await asyncio.sleep(0.05)
    await asyncio.wait_for(stored.wait(), 5)
    await asyncio.sleep(0.05)
    assert lean.lean_connections == 0
    monkeypatch.setattr(lean.bridge.store, "ingest", real)
    ((status, _, body),) = await _exchange(lean.port, raw)  # the provider's retry
    assert status == 200 and orjson.loads(body)["duplicate"] is True
