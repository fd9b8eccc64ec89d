"""The HTTP/1.1 client of outbound webhooks: one POST per attempt over kept-alive connections.

What a webhook sender needs and nothing else: POST a body with headers, read the status, the
headers and the first KiB of the response, within one deadline per attempt. Every new
connection goes to an address checked by :func:`bridge.ssrf.resolve_checked` (the host name is
resolved once, checked, and the socket connects to that address; TLS still verifies the
certificate for the host name). No redirects are followed, no cookies kept, no proxy variables
read, no compression asked for. Responses are parsed by ``httptools`` (llhttp, the parser of
Node.js and uvicorn): status line, headers, Content-Length and chunked bodies, interim 1xx.

Why not aiohttp's client (which paybridge used before): on the benchmark machine it cost
~93 µs of CPU per POST against ~42 µs for this one, and the POST is most of what a delivery
costs (fan-out throughput, end-to-end latency at 500 events/s). Connection reuse is the same:
a pool of idle connections per origin, dropped after ``keepalive_s`` idle or when the server
says ``Connection: close``.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field

import httptools
from aiohttp.abc import AbstractResolver
from yarl import URL

from bridge.ssrf import resolve_checked

__all__ = ["HTTPResponse", "ResponseError", "WebhookHTTP"]

_READ_SIZE = 16 * 1024  # each connection's read buffer
_DRAIN_MAX = 64 * 1024  # past this much response body the connection is dropped, not drained
_IDLE_PER_ORIGIN = 64


class ResponseError(OSError):
    """The server broke HTTP: a malformed response, or the connection closed before one."""


@dataclass(slots=True)
class HTTPResponse:
    """What one POST got back. ``error`` is set when reading stopped after the status line
    arrived (the body then holds what came); the status still counts."""

    status: int
    headers: dict[str, str]
    body: bytes
    error: BaseException | None = None


@dataclass(slots=True)
class _Message:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: list[bytes] = field(default_factory=list)
    kept: int = 0  # body bytes kept (at most the caller's limit)
    seen: int = 0  # body bytes received


class _Connection(asyncio.BufferedProtocol):
    """One connection and the response being read on it (one request at a time).

    A buffered protocol: responses are read into one buffer per connection (``recv_into``)
    instead of a new ``bytes`` per read, which asyncio allocates at 256 KiB and shrinks
    (~14 µs per read on the benchmark machine, against ~1 µs)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, keep: int) -> None:
        self._loop = loop
        self._keep = keep
        self._buf = memoryview(bytearray(_READ_SIZE))
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reusable = True
        self.idle_since = 0.0
        self.msg = _Message()
        self.head: asyncio.Future[None] | None = None
        self.done: asyncio.Future[None] | None = None

    # -- requests ---------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        """Write one request; :attr:`head` resolves at the final status line and headers,
        :attr:`done` at the end of the response."""
        self.msg = _Message()
        self.head, self.done = self._loop.create_future(), self._loop.create_future()
        assert self.transport is not None
        self.transport.write(data)

    def close(self) -> None:
        self.reusable = False
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True

    def expire(self) -> None:
        """The attempt's deadline passed: whatever is still awaited fails with TimeoutError."""
        if (self.head is not None and not self.head.done()) or (
            self.done is not None and not self.done.done()
        ):
            self._fail(TimeoutError())

    def _fail(self, exc: BaseException) -> None:
        self.reusable = False
        for fut in (self.head, self.done):
            if fut is not None and not fut.done():
                fut.set_exception(exc)
                fut.exception()  # marked as seen: the caller awaits at most one of the two
        self.close()

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buf

    def buffer_updated(self, nbytes: int) -> None:
        if self.done is None or self.done.done():  # nothing asked: a server may not talk first
            self._fail(ResponseError("unexpected data from the server"))
            return
        try:
            self._parser.feed_data(self._buf[:nbytes])
        except httptools.HttpParserError as exc:
            self._fail(ResponseError(f"malformed HTTP response: {exc}"))

    def eof_received(self) -> bool | None:
        """The server closed its side: this connection takes no further request (the
        transport closes; a body running until the close is complete then)."""
        self.reusable = False
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        head, done = self.head, self.done
        head_seen = (
            head is not None and head.done() and not head.cancelled() and not head.exception()
        )
        if head_seen and done is not None and not done.done():
            # A body without Content-Length runs until the server closes; any other body
            # cut short still came after the status, which stands.
            done.set_result(None)
        elif self.head is not None and not self.head.done():
            err = ResponseError("connection closed before a response")
            if exc is not None:
                err.__cause__ = exc
            self._fail(err)

    # -- httptools callbacks ----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self.msg.headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        self.msg.status = self._parser.get_status_code()
        if self.msg.status >= 200 and self.head is not None and not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        msg = self.msg
        msg.seen += len(body)
        if msg.kept < self._keep:
            piece = body[: self._keep - msg.kept]
            msg.body.append(piece)
            msg.kept += len(piece)
        if msg.seen > _DRAIN_MAX:  # not worth reading to the end to reuse the connection
            self.reusable = False
            if self.done is not None and not self.done.done():
                self.done.set_result(None)

    def on_message_complete(self) -> None:
        if self.msg.status < 200:  # an interim 1xx: the real response follows
            self.msg = _Message()
            return
        if not self._parser.should_keep_alive():
            self.reusable = False
        if self.done is not None and not self.done.done():
            self.done.set_result(None)


class WebhookHTTP:
    """POSTs with a pool of kept-alive connections per origin (see the module docstring)."""

    def __init__(
        self,
        *,
        timeout_s: float,
        allow_private: bool,
        body_limit: int = 1024,
        keepalive_s: float = 15.0,
        resolver: AbstractResolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._timeout_s = timeout_s
        self._allow_private = allow_private
        self._limit = body_limit
        self._keepalive_s = keepalive_s
        self._resolver = resolver
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._closed = False

    async def post(self, url: URL, body: bytes, headers: dict[str, str]) -> HTTPResponse:
        """POST ``body`` to ``url`` (absolute, http or https) within one deadline.

        Raises:
            TimeoutError: no final status line before the deadline.
            UnsafeAddressError: the host is refused by the SSRF guard (an OSError).
            OSError: connecting or sending failed, or :class:`ResponseError`.
            ValueError: a URL without a host, or with another scheme.
        """
        if self._closed:
            raise ResponseError("client is closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        key = self._origin(url)
        request = _request(url, body, headers)  # refused before any connection is made
        conn = self._take_idle(key)
        if conn is None:
            async with asyncio.timeout_at(deadline):  # resolve, TCP and TLS handshakes
                conn = await self._connect(loop, url)
        # A plain timer, not asyncio.timeout (two per POST measured ~5 % of a delivery's CPU).
        timer = loop.call_at(deadline, conn.expire)
        error: BaseException | None = None
        try:
            try:
                conn.send(request)
                assert conn.head is not None
                await conn.head
            except BaseException:
                conn.close()
                raise
            # The server has answered: from here on a failure never hides the status.
            try:
                assert conn.done is not None
                await conn.done
            except (TimeoutError, OSError) as exc:
                error = exc
                conn.close()
        finally:
            timer.cancel()
        msg = conn.msg
        if conn.reusable and not conn.closed and error is None:
            self._give_back(key, conn)
        else:
            conn.close()
        return HTTPResponse(msg.status, msg.headers, b"".join(msg.body), error)

    async def close(self) -> None:
        """Close every idle connection; later posts fail. Idempotent."""
        self._closed = True
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    # -- connections ------------------------------------------------------------------------
    @staticmethod
    def _origin(url: URL) -> tuple[str, str, int]:
        if url.scheme not in ("http", "https") or not url.raw_host or url.port is None:
            raise ValueError(f"cannot POST to {url.scheme!r} URL without a host")
        return url.scheme, url.raw_host, url.port

    def _take_idle(self, key: tuple[str, str, int]) -> _Connection | None:
        conns = self._idle.get(key)
        now = time.monotonic()
        while conns:
            conn = conns.pop()
            if self._usable(conn, now):
                return conn
        return None

    def _give_back(self, key: tuple[str, str, int], conn: _Connection) -> None:
        now = time.monotonic()
        # Connections the server closed or that idled too long go now, not at the next take.
        conns = [c for c in self._idle.get(key, ()) if self._usable(c, now)]
        self._idle[key] = conns
        if len(conns) >= _IDLE_PER_ORIGIN or self._closed:
            conn.close()
            return
        conn.idle_since = now
        conns.append(conn)

    def _usable(self, conn: _Connection, now: float) -> bool:
        transport = conn.transport
        alive = not conn.closed and transport is not None and not transport.is_closing()
        if alive and now - conn.idle_since < self._keepalive_s:
            return True
        conn.close()
        return False

    async def _connect(self, loop: asyncio.AbstractEventLoop, url: URL) -> _Connection:
        host, port = url.raw_host or "", url.port or 0
        addresses = await resolve_checked(
            host, port, allow_private=self._allow_private, resolver=self._resolver
        )
        tls: ssl.SSLContext | None = None
        if url.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        last: OSError | None = None
        for address in addresses:
            try:
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop, self._limit),
                    address["host"],
                    address["port"],
                    family=address["family"],
                    ssl=tls,
                    server_hostname=host if tls is not None else None,
                )
                return conn
            except OSError as exc:
                last = exc
        assert last is not None  # resolve_checked never returns an empty list
        raise last


def _request(url: URL, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {url.raw_path_qs} HTTP/1.1", f"Host: {url.host_port_subcomponent}"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} holds a line break")
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
