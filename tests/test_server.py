"""bridge/server.py: the Bridge served by aiohttp's own server with the limits of ``server:``,
through :func:`bridge.server.serving` (the runner and options ``paybridge serve`` uses).

Every test talks raw HTTP/1.1 to a real listener on 127.0.0.1 and checks what was stored in
the real SQLite store. A slow store is a real one: another connection holds SQLite's write
lock until the test lets go.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from bridge.server import serving
from bridge.service import Bridge
from bridge.store.compression import unpacked
from tests.conftest import make_config, stripe_event, stripe_headers
from tests.rawhttp import connect, exchange, read_response, request, send_in_pieces, signed_event
from tests.receivers import subscription


@dataclass
class Served:
    bridge: Bridge
    port: int
    db: Path

    async def inbox(self) -> int:
        return (await self.bridge.store.counts())["inbox"]


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    async with contextlib.AsyncExitStack() as stack:

        async def factory(extra_yaml: str = "") -> Served:
            bridge = Bridge(make_config(tmp_path, extra_yaml))
            cfg = bridge.config.server
            port = await stack.enter_async_context(serving(bridge.web_app(), cfg, "127.0.0.1", 0))
            return Served(bridge, port, tmp_path / "paybridge.db")

        yield factory


@contextlib.contextmanager
def write_locked(db: Path) -> Iterator[None]:
    """Hold SQLite's write lock on ``db`` from another connection: the store's commits wait
    (its busy timeout is 5 s) until the block ends."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def _headers_of(n: int) -> list[str]:
    return [f"X-Pad-{i}: v" for i in range(n)]


async def test_configured_header_limits_answer_400_and_store_nothing(serve: Serve) -> None:
    """Each configured limit is aiohttp's: at the limit the request is stored, one past it is a
    400 before any handler runs, in one write or split into 7-byte pieces."""
    s = await serve(
        "server:\n  max_headers: 16\n  max_header_field_bytes: 512\n  max_request_line_bytes: 64"
    )
    # Host, Stripe-Signature, Content-Type and Content-Length come with every request.
    signature_len = len("Stripe-Signature: ") + len(stripe_headers(b"{}")["Stripe-Signature"])
    fits = {
        "headers": _headers_of(12),
        "field": [f"X-Note: {'n' * 512}"],
        "line": [],
    }
    over = {
        "headers": _headers_of(13),
        "field": [f"X-Note: {'n' * 513}"],
        "name": [f"{'N' * 513}: n"],
        "line": [],
    }
    assert signature_len < 512
    for name in ("headers", "field", "line"):
        target = "/webhooks/stripe" + ("?" + "q" * 47 if name == "line" else "")  # 64
        body = signed_event(f"evt_fits_{name}")
        ((status, _, _),) = await exchange(s.port, request(body, target=target, extra=fits[name]))
        assert status == 200, name
    stored = await s.inbox()
    for name in over:
        target = "/webhooks/stripe" + ("?" + "q" * 48 if name == "line" else "")
        raw = request(signed_event(f"evt_over_{name}"), target=target, extra=over[name])
        ((status, _, _),) = await exchange(s.port, raw)
        assert status == 400, name
        assert (await send_in_pieces(s.port, raw, 7))[0] == 400, name
    assert await s.inbox() == stored


def _chunked(body: bytes) -> bytes:
    """A signed Stripe POST of ``body`` in two chunks, with no Content-Length."""
    half = len(body) // 2
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:half], body[half:]))
    head = ["POST /webhooks/stripe HTTP/1.1", "Host: x", "Transfer-Encoding: chunked"]
    head += [f"{k}: {v}" for k, v in stripe_headers(body).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + chunks + b"0\r\n\r\n"


async def test_body_limit_holds_with_or_without_a_length(serve: Serve) -> None:
    """Over ``max_body_bytes`` is a 413 with a Content-Length or chunked; under it a chunked
    body is stored like any other."""
    s = await serve("server: {{max_body_bytes: 4096}}")
    big = orjson.dumps({"pad": "x" * 5000})
    ((status, _, body),) = await exchange(s.port, request(big, stripe_headers(big)))
    assert status == 413 and orjson.loads(body)["error"]["type"] == "payload_too_large"
    ((status, _, _),) = await exchange(s.port, _chunked(big))
    assert status == 413
    assert await s.inbox() == 0
    ((status, _, body),) = await exchange(s.port, _chunked(signed_event("evt_chunked")))
    assert status == 200 and orjson.loads(body)["duplicate"] is False
    assert await s.inbox() == 1


async def test_compressed_body_is_inflated_before_verifying(serve: Serve) -> None:
    """A body sent with Content-Encoding: gzip is verified and stored as its inflated bytes."""
    s = await serve()
    body = signed_event("evt_gzip")
    raw = request(gzip.compress(body), stripe_headers(body), extra=["Content-Encoding: gzip"])
    ((status, _, reply),) = await exchange(s.port, raw)
    assert status == 200 and orjson.loads(reply)["duplicate"] is False


async def test_other_methods_and_routes_get_json_errors(serve: Serve) -> None:
    s = await serve()
    get = b"GET /webhooks/stripe HTTP/1.1\r\nHost: x\r\n\r\n"
    unknown = request(signed_event("evt_nowhere"), target="/webhooks/paypal")
    (method, route) = [(await exchange(s.port, raw))[0] for raw in (get, unknown)]
    assert (method[0], route[0]) == (405, 404)
    assert orjson.loads(method[2])["error"]["type"] == "http_error"
    assert orjson.loads(route[2])["error"]["type"] == "http_error"


async def test_idle_connection_closes_after_the_keepalive_timeout(serve: Serve) -> None:
    """After an answer, and when a request head stops arriving half-way."""
    s = await serve("server: {{keepalive_timeout_s: 0.2}}")
    async with connect(s.port) as (reader, writer):
        writer.write(request(signed_event("evt_keepalive")))
        assert (await read_response(reader))[0] == 200
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
    async with connect(s.port) as (reader, writer):
        writer.write(request(signed_event("evt_half_head"))[:40])
        assert await asyncio.wait_for(reader.read(), 10) == b""
    assert await s.inbox() == 1


async def test_pipelined_requests_are_answered_in_order(serve: Serve) -> None:
    s = await serve()
    raw = request(signed_event("evt_pipe_1")) + request(signed_event("evt_pipe_2"))
    raw += b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" + request(signed_event("evt_pipe_1"))
    first, second, health, again = await exchange(s.port, raw, responses=4)
    assert [r[0] for r in (first, second, health, again)] == [200] * 4
    assert orjson.loads(first[2])["duplicate"] is False
    assert orjson.loads(health[2])["store"]["inbox"] == 2
    assert orjson.loads(again[2])["duplicate"] is True


async def test_connection_close_is_honoured(serve: Serve) -> None:
    s = await serve()
    body = signed_event("evt_close")
    async with connect(s.port) as (reader, writer):
        writer.write(request(body, extra=["Connection: close"]))
        status, headers, _ = await read_response(reader)
        assert await asyncio.wait_for(reader.read(), 10) == b""
    assert status == 200 and headers["connection"].lower() == "close"


async def test_expect_continue_gets_the_interim_response_then_the_answer(serve: Serve) -> None:
    s = await serve()
    body = signed_event("evt_expect")
    head = request(body, extra=["Expect: 100-continue"])[: -len(body)]
    async with connect(s.port) as (reader, writer):
        writer.write(head)
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        writer.write(body)
        status, _, reply = await read_response(reader)
    assert status == 200 and orjson.loads(reply)["duplicate"] is False


async def test_big_body_is_stored_as_sent_and_the_connection_goes_on(serve: Serve) -> None:
    """A 300 KB event (under the 1 MiB default) then a small one on the same connection."""
    s = await serve()
    sub = {**subscription("sub_big"), "metadata": {f"k{i}": "v" * 900 for i in range(330)}}
    big = orjson.dumps(stripe_event("customer.subscription.created", sub, event_id="evt_big"))
    assert len(big) > 300_000
    async with connect(s.port) as (reader, writer):
        writer.write(request(big))
        status, _, body = await read_response(reader)
        assert status == 200 and len(orjson.loads(body)["events"]) == 2
        writer.write(request(signed_event("evt_after_big")))
        status, _, body = await read_response(reader)
        assert status == 200 and orjson.loads(body)["duplicate"] is False
    with contextlib.closing(sqlite3.connect(s.db)) as conn:
        (stored,) = conn.execute(
            "SELECT payload FROM inbox WHERE provider_event_id = 'evt_big'"
        ).fetchone()
    assert unpacked(bytes(stored)) == big  # kept exactly, compressed


async def test_provider_hanging_up_while_its_request_is_stored(serve: Serve) -> None:
    """The event is still stored (the handler is not cancelled), nothing breaks on the closed
    connection, and the provider's retry is a duplicate."""
    s = await serve()
    raw = request(signed_event("evt_gone"))
    with write_locked(s.db):
        async with connect(s.port) as (_, writer):
            writer.write(raw)
            await writer.drain()
            await asyncio.sleep(0.2)  # the request reaches the store and waits for the lock
    ((status, _, body),) = await exchange(s.port, raw)  # the provider's retry
    assert status == 200 and orjson.loads(body)["duplicate"] is True


async def test_shutdown_answers_requests_being_stored_and_closes_idle_ones(
    tmp_path: Path,
) -> None:
    bridge = Bridge(make_config(tmp_path))
    db = tmp_path / "paybridge.db"
    server = contextlib.AsyncExitStack()
    port = await server.enter_async_context(
        serving(bridge.web_app(), bridge.config.server, "127.0.0.1", 0)
    )
    stopping: asyncio.Future[None] | None = None
    try:
        async with connect(port) as (idle_reader, _), connect(port) as (reader, writer):
            with write_locked(db):
                writer.write(request(signed_event("evt_shutdown")))
                await asyncio.sleep(0.2)  # the request reaches the store and waits for the lock
                stopping = asyncio.ensure_future(server.aclose())  # what SIGTERM does
                assert await asyncio.wait_for(idle_reader.read(), 10) == b""
            status, _, body = await read_response(reader)
    finally:
        await asyncio.wait_for(stopping or server.aclose(), 30)
    assert status == 200 and orjson.loads(body)["duplicate"] is False
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT count(*) FROM inbox").fetchone() == (1,)
