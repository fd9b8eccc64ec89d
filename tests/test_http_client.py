"""bridge/http_client.py against real local servers: scripted raw HTTP (asyncio) for the edge
cases, an aiohttp server for keep-alive, a TLS server with a generated certificate."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from yarl import URL

from bridge.http_client import ResponseError, WebhookHTTP
from bridge.ssrf import UnsafeAddressError, find_unsafe_address_error
from tests.test_ssrf import StaticResolver

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length)


@asynccontextmanager
async def raw_server(script: Script) -> AsyncIterator[tuple[URL, list[bytes]]]:
    """A server that runs ``script`` per connection; yields its URL and the request heads."""
    heads: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await script(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def recording(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await handle(_Recording(reader, heads), writer)  # type: ignore[arg-type]

    server = await asyncio.start_server(recording, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield URL(f"http://127.0.0.1:{port}/hook?x=1"), heads
    finally:
        server.close()
        await server.wait_closed()


class _Recording:
    """A StreamReader wrapper that keeps every request head read through it."""

    def __init__(self, reader: asyncio.StreamReader, heads: list[bytes]) -> None:
        self._reader, self._heads = reader, heads

    async def readuntil(self, sep: bytes) -> bytes:
        data = await self._reader.readuntil(sep)
        if sep == b"\r\n\r\n":
            self._heads.append(data)
        return data

    async def readexactly(self, n: int) -> bytes:
        return await self._reader.readexactly(n)


def _replying(reply: bytes, *, then_wait: bool = False) -> Script:
    """A script answering one request with the raw bytes ``reply`` (then waiting for the
    client to close, or closing at once)."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(reply)
        await writer.drain()
        if then_wait:
            await reader.read()

    return script


def _client(**kw: object) -> WebhookHTTP:
    return WebhookHTTP(timeout_s=float(kw.pop("timeout_s", 5)), allow_private=True, **kw)  # type: ignore[arg-type]


async def test_post_sends_body_headers_and_host_and_reads_response() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, body = await _read_request(reader)
        assert body == b'{"a":1}'
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nRetry-After: 3\r\n\r\nok")
        await writer.drain()
        await reader.read()

    client = _client()
    async with raw_server(script) as (url, heads):
        resp = await client.post(url, b'{"a":1}', {"Content-Type": "application/json"})
    await client.close()
    assert (resp.status, resp.body, resp.headers["retry-after"], resp.error) == (
        201,
        b"ok",
        "3",
        None,
    )
    head = heads[0].decode()
    assert head.startswith("POST /hook?x=1 HTTP/1.1\r\n")
    assert f"Host: {url.host_port_subcomponent}\r\n" in head
    assert "Content-Length: 7\r\n" in head and "Cookie" not in head


async def test_keep_alive_reuses_one_connection_and_drops_it_on_connection_close() -> None:
    peers: list[object] = []

    async def hook(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        close = request.query.get("close") == "1"
        return web.Response(text="ok", headers={"Connection": "close"} if close else None)

    app = web.Application()
    app.router.add_post("/hook", hook)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    client = _client()
    try:
        base = URL(f"http://127.0.0.1:{server.port}/hook")
        for _ in range(3):
            assert (await client.post(base, b"{}", {})).status == 200
        assert (await client.post(base.with_query(close="1"), b"{}", {})).status == 200
        assert (await client.post(base, b"{}", {})).status == 200
    finally:
        await client.close()
        await server.close()
    assert peers[0] == peers[1] == peers[2] == peers[3]  # one connection for four requests
    assert peers[4] != peers[3]  # the server said close: a new one


async def test_chunked_body_is_kept_to_the_limit_and_the_connection_reused() -> None:
    connections = 0

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            await _read_request(reader)
            chunk = b"x" * 3000
            writer.write(
                b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n"
                + f"{len(chunk):x}\r\n".encode()
                + chunk
                + b"\r\n0\r\n\r\n"
            )
            await writer.drain()

    client = _client(body_limit=1024)
    async with raw_server(script) as (url, _):
        first = await client.post(url, b"{}", {})
        second = await client.post(url, b"{}", {})
    await client.close()
    assert (first.status, first.body, second.body) == (500, b"x" * 1024, b"x" * 1024)
    assert connections == 1


async def test_interim_100_continue_is_skipped() -> None:
    script = _replying(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", then_wait=True
    )
    client = _client()
    async with raw_server(script) as (url, _):
        resp = await client.post(url, b"{}", {})
    await client.close()
    assert (resp.status, resp.body) == (204, b"")


async def test_body_until_close_without_length() -> None:
    script = _replying(b"HTTP/1.0 200 OK\r\n\r\nall of it")
    client = _client()
    async with raw_server(script) as (url, _):
        resp = await client.post(url, b"{}", {})
    await client.close()
    assert (resp.status, resp.body, resp.error) == (200, b"all of it", None)


@pytest.mark.parametrize(
    "reply",
    [b"", b"HTTP/1.1 2", b"SMTP ready\r\n\r\n"],
    ids=["closed", "cut-in-status-line", "not-http"],
)
async def test_no_valid_response_is_a_response_error(reply: bytes) -> None:
    script = _replying(reply)
    client = _client()
    async with raw_server(script) as (url, _):
        with pytest.raises(ResponseError):
            await client.post(url, b"{}", {})
    await client.close()


async def test_status_stands_when_the_body_times_out() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()
        await asyncio.sleep(5)

    client = _client(timeout_s=0.3)
    async with raw_server(script) as (url, _):
        resp = await client.post(url, b"{}", {})
    await client.close()
    assert (resp.status, resp.body) == (200, b"partial")
    assert isinstance(resp.error, TimeoutError)


async def test_no_status_before_the_deadline_is_a_timeout() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    client = _client(timeout_s=0.2)
    async with raw_server(script) as (url, _):
        with pytest.raises(TimeoutError):
            await client.post(url, b"{}", {})
    await client.close()


@pytest.mark.parametrize(
    ("length", "pause", "kept"),
    [(10_000_000, 0.0, 1024), (0, 0.1, 0)],
    ids=["huge-body-not-drained", "idle-connection-closed-by-server"],
)
async def test_connection_not_reused(length: int, pause: float, kept: int) -> None:
    """A body too long to drain drops the connection; so does the server closing it while
    idle (the script returns after one response): each post then opens a new one."""
    connections = 0

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _read_request(reader)
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\n".encode())
        for _ in range(length // 100_000):
            writer.write(b"y" * 100_000)
            await writer.drain()

    client = _client()
    async with raw_server(script) as (url, _):
        first = await client.post(url, b"{}", {})
        await asyncio.sleep(pause)  # the close reaches the idle connection
        second = await client.post(url, b"{}", {})
    await client.close()
    assert (first.status, len(first.body), second.status) == (200, kept, 200)
    assert connections == 2


async def test_host_name_connects_to_the_checked_address_or_is_refused() -> None:
    script = _replying(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    resolver = StaticResolver({"receiver.test": ["127.0.0.1"]})
    async with raw_server(script) as (url, heads):
        named = url.with_host("receiver.test")
        allowed = WebhookHTTP(timeout_s=5, allow_private=True, resolver=resolver)
        assert (await allowed.post(named, b"{}", {})).status == 200
        await allowed.close()
        refused = WebhookHTTP(timeout_s=5, allow_private=False, resolver=resolver)
        with pytest.raises(OSError) as info:
            await refused.post(named, b"{}", {})
        await refused.close()
        literal = WebhookHTTP(timeout_s=5, allow_private=False)
        with pytest.raises(UnsafeAddressError):
            await literal.post(url, b"{}", {})
        await literal.close()
    assert isinstance(find_unsafe_address_error(info.value), UnsafeAddressError)
    assert len(heads) == 1 and f"Host: receiver.test:{url.port}\r\n".encode() in heads[0]
    assert resolver.queries == ["receiver.test", "receiver.test"]


async def test_header_with_a_line_break_is_refused_before_sending() -> None:
    client = _client()
    with pytest.raises(ValueError, match="line break"):
        await client.post(URL("http://127.0.0.1:9/"), b"{}", {"X-A": "1\r\nX-B: 2"})
    await client.close()
    with pytest.raises(ResponseError, match="closed"):
        await client.post(URL("http://127.0.0.1:9/"), b"{}", {})


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "receiver.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("receiver.test"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_https_verifies_the_certificate_for_the_host_name(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await _read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nTLS")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    resolver = StaticResolver({"receiver.test": ["127.0.0.1"]})
    trusting = ssl.create_default_context(cafile=str(cert))
    try:
        good = WebhookHTTP(timeout_s=5, allow_private=True, resolver=resolver, ssl_context=trusting)
        resp = await good.post(URL(f"https://receiver.test:{port}/hook"), b"{}", {})
        await good.close()
        untrusting = WebhookHTTP(timeout_s=5, allow_private=True, resolver=resolver)
        with pytest.raises(ssl.SSLCertVerificationError):
            await untrusting.post(URL(f"https://receiver.test:{port}/hook"), b"{}", {})
        await untrusting.close()
    finally:
        server.close()
        await server.wait_closed()
    assert (resp.status, resp.body) == (200, b"TLS")


async def test_connection_idle_past_keepalive_is_not_reused() -> None:
    connections = 0

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:  # this server would keep the connection open for ever
            await _read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    client = _client(keepalive_s=0.05)
    async with raw_server(script) as (url, _):
        assert (await client.post(url, b"{}", {})).status == 200
        assert (await client.post(url, b"{}", {})).status == 200  # reused at once
        await asyncio.sleep(0.1)
        assert (await client.post(url, b"{}", {})).status == 200
    await client.close()
    assert connections == 2
