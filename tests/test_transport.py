"""bridge/transport.py against real local servers: what goes on the wire, connection reuse,
the body cap, the deadline, broken responses, and names resolved through the SSRF guard.
(Hostile receivers are in tests/test_hostile_receivers.py.)"""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from bridge.config import DeliveryConfig
from bridge.errors import ResponseError, UnsafeAddressError
from bridge.ssrf import find_unsafe_address_error
from bridge.transport import AiohttpTransport
from tests.raw_receivers import (
    FqdnResolver,
    RawReceiver,
    raw_receiver,
    read_request,
    replying,
    wait_client_close,
)


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    t = AiohttpTransport(timeout_s=5, allow_private=True)
    yield t
    await t.close()


async def test_post_sends_body_and_headers_and_reads_the_answer(
    transport: AiohttpTransport,
) -> None:
    reply = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nRetry-After: 3\r\n\r\nok"
    async with raw_receiver(replying(reply), path="/hook?x=1") as rcv:
        resp = await transport.post(rcv.url, b'{"a":1}', {"Content-Type": "application/json"})
    assert (resp.status, resp.body, resp.headers.get("retry-after"), resp.error) == (
        201,
        b"ok",
        "3",
        None,
    )
    head = rcv.heads[0].decode().lower()
    assert head.startswith("post /hook?x=1 http/1.1\r\n")
    assert f"host: {rcv.url.host_port_subcomponent}\r\n" in head
    assert "content-length: 7\r\n" in head
    for absent in ("cookie", "accept-encoding", "proxy"):
        assert absent not in head


async def test_keep_alive_reuses_one_connection_until_the_server_says_close(
    transport: AiohttpTransport,
) -> None:
    peers: list[object] = []

    async def hook(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        close = request.query.get("close") == "1"
        return web.Response(text="ok", headers={"Connection": "close"} if close else None)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        base = URL(f"http://127.0.0.1:{server.port}/hook")
        for _ in range(3):
            assert (await transport.post(base, b"{}", {})).status == 200
        assert (await transport.post(base.with_query(close="1"), b"{}", {})).status == 200
        assert (await transport.post(base, b"{}", {})).status == 200
    finally:
        await server.close()
    assert peers[0] == peers[1] == peers[2] == peers[3]  # one connection for four requests
    assert peers[4] != peers[3]  # the server said close: a new one


async def test_body_is_kept_to_the_limit_and_a_long_one_is_not_drained() -> None:
    reply = b"HTTP/1.1 500 Oops\r\nContent-Length: 10000000\r\n\r\n" + b"x" * 200_000
    t = AiohttpTransport(timeout_s=5, allow_private=True, body_limit=1024)
    try:
        async with raw_receiver(replying(reply)) as rcv:
            first = await t.post(rcv.url, b"{}", {})
            second = await t.post(rcv.url, b"{}", {})
    finally:
        await t.close()
    assert (first.status, first.body, second.body) == (500, b"x" * 1024, b"x" * 1024)
    assert rcv.connections == 2  # the unread rest was dropped with its connection


async def test_compressed_body_is_not_inflated(transport: AiohttpTransport) -> None:
    bomb = gzip.compress(b"\0" * 10_000_000)
    head = f"HTTP/1.1 400 Bad\r\nContent-Encoding: gzip\r\nContent-Length: {len(bomb)}\r\n\r\n"
    async with raw_receiver(replying(head.encode() + bomb)) as rcv:
        resp = await transport.post(rcv.url, b"{}", {})
    assert resp.status == 400
    assert resp.body == bomb[:1024]


async def test_interim_100_continue_is_skipped(transport: AiohttpTransport) -> None:
    reply = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"
    async with raw_receiver(replying(reply)) as rcv:
        resp = await transport.post(rcv.url, b"{}", {})
    assert (resp.status, resp.body) == (204, b"")


async def test_body_until_close_without_length(transport: AiohttpTransport) -> None:
    async with raw_receiver(replying(b"HTTP/1.0 200 OK\r\n\r\nall of it", keep_open=False)) as rcv:
        resp = await transport.post(rcv.url, b"{}", {})
    assert (resp.status, resp.body, resp.error) == (200, b"all of it", None)


@pytest.mark.parametrize(
    "reply",
    [b"", b"HTTP/1.1 2", b"SMTP ready\r\n\r\n"],
    ids=["closed", "cut-in-status-line", "not-http"],
)
async def test_no_valid_response_is_a_response_error(
    transport: AiohttpTransport, reply: bytes
) -> None:
    async with raw_receiver(replying(reply, keep_open=False)) as rcv:
        with pytest.raises(ResponseError):
            await transport.post(rcv.url, b"{}", {})


async def test_status_stands_when_the_body_misses_the_deadline() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, rcv: RawReceiver) -> None:
        await read_request(r, rcv)
        rcv.write(w, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await w.drain()
        await wait_client_close(r, rcv)

    t = AiohttpTransport(timeout_s=0.3, allow_private=True)
    try:
        async with raw_receiver(script) as rcv:
            resp = await t.post(rcv.url, b"{}", {})
            async with asyncio.timeout(10):
                await rcv.client_closed.wait()
    finally:
        await t.close()
    assert (resp.status, resp.body) == (200, b"partial")
    assert isinstance(resp.error, TimeoutError)


async def test_no_status_before_the_deadline_is_a_timeout() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, rcv: RawReceiver) -> None:
        await read_request(r, rcv)
        await wait_client_close(r, rcv)

    t = AiohttpTransport(timeout_s=0.2, allow_private=True)
    try:
        async with raw_receiver(script) as rcv:
            with pytest.raises(TimeoutError):
                await t.post(rcv.url, b"{}", {})
    finally:
        await t.close()


async def test_host_name_connects_to_the_checked_address_or_is_refused() -> None:
    resolver = FqdnResolver({"receiver.test": ["127.0.0.1"]})
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    async with raw_receiver(replying(ok)) as rcv:
        named = rcv.url.with_host("receiver.test")
        allowed = AiohttpTransport(timeout_s=5, allow_private=True, resolver=resolver)
        try:
            assert (await allowed.post(named, b"{}", {})).status == 200
        finally:
            await allowed.close()
        refused = AiohttpTransport(timeout_s=5, allow_private=False, resolver=resolver)
        try:
            with pytest.raises(OSError) as info:
                await refused.post(named, b"{}", {})
            with pytest.raises(UnsafeAddressError):
                await refused.post(rcv.url, b"{}", {})  # the IP literal itself
        finally:
            await refused.close()
    assert isinstance(find_unsafe_address_error(info.value), UnsafeAddressError)
    assert (
        len(rcv.heads) == 1 and f"Host: receiver.test:{rcv.url.port}\r\n".encode() in rcv.heads[0]
    )
    assert resolver.queries == ["receiver.test", "receiver.test"]


async def test_header_with_a_line_break_is_refused_before_sending(
    transport: AiohttpTransport,
) -> None:
    async with raw_receiver(replying(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")) as rcv:
        with pytest.raises(ValueError):
            await transport.post(rcv.url, b"{}", {"X-A": "1\r\nX-B: 2"})
    assert rcv.heads == []


async def test_proxy_variables_are_ignored(
    transport: AiohttpTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    async with raw_receiver(replying(ok)) as proxy, raw_receiver(replying(ok)) as target:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, str(proxy.url.with_path("")))
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        assert (await transport.post(target.url, b"{}", {})).status == 200
    assert (proxy.connections, len(target.heads)) == (0, 1)


async def test_connections_per_endpoint_are_capped_by_the_delivery_settings() -> None:
    delivery = DeliveryConfig(max_in_flight_per_endpoint=2, allow_private_networks=True)
    t = AiohttpTransport.from_config(delivery)
    try:
        async with raw_receiver(replying(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")) as rcv:
            answers = await asyncio.gather(*(t.post(rcv.url, b"{}", {}) for _ in range(6)))
    finally:
        await t.close()
    assert [a.status for a in answers] == [200] * 6
    assert rcv.connections == 2  # the other four waited for a kept-alive connection


async def test_idle_connection_is_closed_after_keepalive() -> None:
    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, rcv: RawReceiver) -> None:
        await read_request(r, rcv)
        rcv.write(w, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await w.drain()
        await wait_client_close(r, rcv)  # this server would keep it open for ever

    t = AiohttpTransport(timeout_s=5, allow_private=True, keepalive_s=0.05)
    try:
        async with raw_receiver(script) as rcv:
            assert (await t.post(rcv.url, b"{}", {})).status == 200
            async with asyncio.timeout(10):  # bounded: the client lets the idle one go
                await rcv.client_closed.wait()
    finally:
        await t.close()
    assert rcv.closed_by_client == 1
