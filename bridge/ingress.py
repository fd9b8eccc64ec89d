"""The listening side of ``paybridge serve``: provider webhooks on a lean HTTP/1.1 path, every
other request on the aiohttp application.

A provider POST is most of what a payment webhook service serves, and aiohttp's per-request
machinery (request and payload objects, a task per request, router, middleware, response
writer) cost about as much CPU as everything paybridge does with the event. Each accepted
connection therefore starts on :class:`_Connection`, which answers exactly one kind of request
itself::

    POST /webhooks/stripe HTTP/1.1            (or /webhooks/payment-kit)
    Host: <one>
    Content-Length: N                        (one, digits, at most server.max_body_bytes)
    <token>: <visible ASCII>                 (every other header line)

with :func:`bridge.app.ingress_reply`, the function behind the aiohttp routes too, so the
status, JSON body and effects are the same whichever path a request takes. At the first
request that is anything else (another route or method, a query string, chunked or absent
length, ``Expect``, ``Upgrade``, HTTP/1.0, a head over 16 KiB, bytes outside visible ASCII,
a body over the limit) the connection is handed, from the first byte of that request, to
aiohttp's own protocol for the rest of its life: the lean path never guesses at a request it
does not fully understand, and no message boundary is ever decided by two parsers.

Requests on one connection are answered in order (pipelined ones wait in the buffer, which
stops reading past one body's worth); idle connections close after aiohttp's keep-alive time
(75 s); on shutdown the listener closes, idle connections close, and requests being stored get
their answer (``Connection: close``) within ``server.shutdown_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE
from multidict import CIMultiDict, CIMultiDictProxy

from adapters.base import InboundRequest
from bridge.app import BRIDGE_KEY, error_body, ingress_reply

if TYPE_CHECKING:
    from bridge.service import Bridge

__all__ = ["IngressSite", "run_app"]

log = logging.getLogger(__name__)

ROUTES: dict[bytes, tuple[str, str]] = {
    b"/webhooks/stripe": ("stripe", "/webhooks/stripe"),
    b"/webhooks/payment-kit": ("payment_kit", "/webhooks/payment-kit"),
}
MAX_HEAD = 16 * 1024
_READ_SIZE = 64 * 1024  # each connection's read buffer (grows for a larger request)
KEEPALIVE_S = 75.0  # aiohttp's default keepalive_timeout
_SWEEP_S = 5.0
# A header line the lean path accepts: an RFC 9110 token, a colon, visible ASCII or blanks.
_TOKEN = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_VISIBLE = bytes(range(0x20, 0x7F)) + b"\t"
_HANDOFF_HEADERS = frozenset({b"transfer-encoding", b"expect", b"upgrade"})


class _Head:
    """The parts of a request head the lean path needs."""

    __slots__ = ("close", "headers", "length", "path", "provider")

    def __init__(
        self, provider: str, path: str, headers: CIMultiDict[str], length: int, close: bool
    ) -> None:
        self.provider, self.path, self.headers = provider, path, headers
        self.length, self.close = length, close


def _parse_head(head: bytes, limit: int) -> _Head | None:
    """The request head ``head`` (without its blank line) if the lean path serves it, else None
    (the connection goes to aiohttp from this request on)."""
    lines = head.split(b"\r\n")
    # Visible ASCII and tabs only, line breaks aside (checked in C: a regex per line cost more
    # than the rest of this function).
    if head.translate(None, _VISIBLE) != b"\r\n" * (len(lines) - 1):
        return None
    route = ROUTES.get(lines[0][5:-9]) if lines[0].startswith(b"POST ") else None
    if route is None or not lines[0].endswith(b" HTTP/1.1"):
        return None
    headers: CIMultiDict[str] = CIMultiDict()
    length: int | None = None
    close = False
    hosts = 0
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name.translate(None, _TOKEN):
            return None  # not an RFC 9110 token before the colon (obs-fold, blanks, ...)
        value = value.strip(b" \t")
        lower = name.lower()
        if lower == b"content-length":
            if length is not None or not value.isdigit() or len(value) > 12:
                return None
            length = int(value)
        elif lower == b"connection":
            tokens = {t.strip() for t in value.lower().split(b",")}
            if b"upgrade" in tokens:
                return None
            close = b"close" in tokens
        elif lower == b"host":
            hosts += 1
        elif lower in _HANDOFF_HEADERS:
            return None
        headers.add(name.decode(), value.decode())
    if length is None or length > limit or hosts != 1:  # aiohttp refuses a missing Host
        return None
    return _Head(route[0], route[1], headers, length, close)


class _Dates:
    """The ``Date`` header, formatted once a second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._value = formatdate(second, usegmt=True).encode()
        return self._value


_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n".encode() for s in HTTPStatus}
_FIXED = b"Content-Type: application/json; charset=utf-8\r\nServer: " + SERVER_SOFTWARE.encode()


class _Front:
    """What every lean connection of one listener shares."""

    def __init__(self, bridge: Bridge, server: web.Server) -> None:
        self.bridge = bridge
        self.server = server  # aiohttp's protocol factory, for handed-off connections
        self.limit = bridge.config.server.max_body_bytes
        self.connections: set[_Connection] = set()
        self.dates = _Dates()
        self.closing = False
        self._sweeper: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._sweeper = asyncio.get_running_loop().call_later(_SWEEP_S, self._sweep)

    def _sweep(self) -> None:
        """Close connections idle (or stuck in a partial request) for the keep-alive time."""
        cutoff = time.monotonic() - KEEPALIVE_S
        for conn in [c for c in self.connections if not c.busy and c.last_seen < cutoff]:
            conn.close()
        if not self.closing:
            self._sweeper = asyncio.get_running_loop().call_later(_SWEEP_S, self._sweep)

    async def shutdown(self, grace_s: float) -> None:
        """Close idle connections now; wait up to ``grace_s`` for the busy ones to answer."""
        self.closing = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        busy = []
        for conn in list(self.connections):
            if conn.task is None:
                conn.close()
            else:
                busy.append(conn.task)
        if busy:
            _, late = await asyncio.wait(busy, timeout=grace_s)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        for conn in list(self.connections):
            conn.close()


class _Connection(asyncio.BufferedProtocol):
    """One accepted connection while it carries only provider POSTs (module docstring).

    A buffered protocol: the socket is read straight into this connection's buffer
    (``recv_into``). A plain protocol gets a new ``bytes`` per read, which asyncio allocates at
    256 KiB and shrinks: ~14 µs of each request on the benchmark machine, against ~1 µs."""

    __slots__ = ("_buf", "_end", "_front", "_paused", "_start", "_transport", "last_seen", "task")

    def __init__(self, front: _Front) -> None:
        self._front = front
        self._buf = bytearray(_READ_SIZE)
        self._start = self._end = 0  # the unparsed bytes are _buf[_start:_end]
        self._transport: asyncio.Transport | None = None
        self._paused = False
        self.task: asyncio.Task[None] | None = None
        self.last_seen = time.monotonic()

    @property
    def busy(self) -> bool:
        return self.task is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if self._front.closing:
            transport.close()
            return
        self._front.connections.add(self)

    def connection_lost(self, exc: BaseException | None) -> None:
        # A request being stored is finished (the provider will retry and see a duplicate).
        self._front.connections.discard(self)
        self._transport = None

    def get_buffer(self, sizehint: int) -> memoryview:
        # The only place the buffer changes size: the view handed out for the previous read
        # is still alive while buffer_updated runs, and a bytearray with a view cannot resize.
        start, end = self._start, self._end
        if start == end:
            self._start = self._end = 0
            if len(self._buf) > _READ_SIZE:  # a large body came and went
                self._buf = bytearray(_READ_SIZE)
        elif len(self._buf) - end < _READ_SIZE // 4:
            if start:
                self._buf[: end - start] = self._buf[start:end]
                self._start, self._end = 0, end - start
            if len(self._buf) - self._end < _READ_SIZE // 4:
                self._buf.extend(bytes(len(self._buf)))
        return memoryview(self._buf)[self._end :]

    def buffer_updated(self, nbytes: int) -> None:
        self._end += nbytes
        self.last_seen = time.monotonic()
        if self.task is None:
            self._next()
        elif self._end - self._start > self._front.limit + MAX_HEAD and not self._paused:
            assert self._transport is not None
            self._transport.pause_reading()  # pipelined past one request's worth: wait
            self._paused = True

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _next(self) -> None:
        """Serve the next complete request in the buffer, if there is one."""
        buf, start, end = self._buf, self._start, self._end
        blank = buf.find(b"\r\n\r\n", start, end)
        if blank < 0:
            if end - start > MAX_HEAD:
                self._hand_off()
            return
        head = _parse_head(bytes(buf[start:blank]), self._front.limit)
        if head is None:
            self._hand_off()
            return
        stop = blank + 4 + head.length
        if end < stop:
            return  # the body is still arriving
        body = bytes(buf[blank + 4 : stop])
        self._start = stop
        self.task = asyncio.get_running_loop().create_task(self._serve(head, body))

    async def _serve(self, head: _Head, body: bytes) -> None:
        front = self._front
        bridge = front.bridge
        try:
            if bridge.adapter(head.provider) is None:
                status, reply = (
                    404,
                    error_body("not_found", f"source {head.provider} is not configured"),
                )
            else:
                inbound = InboundRequest(
                    method="POST",
                    path=head.path,
                    query={},
                    headers=CIMultiDictProxy(head.headers),
                    body=body,
                    received_at=bridge.clock(),
                )
                status, reply = await ingress_reply(bridge, head.provider, inbound)
        except Exception:  # a bug here must not leave the connection waiting forever
            log.exception("ingress connection failed")
            self.task = None
            self.close()
            return
        self.task = None
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        close = head.close or front.closing
        transport.write(
            b"".join(
                (
                    _STATUS_LINES[status],
                    _FIXED,
                    b"\r\nContent-Length: ",
                    str(len(reply)).encode(),
                    b"\r\nDate: ",
                    front.dates.now(),
                    b"\r\nConnection: close\r\n\r\n" if close else b"\r\n\r\n",
                    reply,
                )
            )
        )
        if close:
            transport.close()
            return
        self.last_seen = time.monotonic()
        if self._paused:
            self._paused = False
            transport.resume_reading()
        if self._end > self._start:
            self._next()

    def _hand_off(self) -> None:
        """Give the connection, from the first byte of the request in the buffer, to aiohttp."""
        transport = self._transport
        self._front.connections.discard(self)
        if transport is None or transport.is_closing():
            return
        handler = self._front.server()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        data = bytes(self._buf[self._start : self._end])
        self._start = self._end = 0
        if self._paused:
            self._paused = False
            transport.resume_reading()
        if data:
            handler.data_received(data)


class IngressSite(web.BaseSite):
    """A TCP site whose connections start on the lean provider path (module docstring)."""

    __slots__ = ("_front", "_host", "_port", "_reuse_address")

    def __init__(
        self,
        runner: web.AppRunner,
        host: str,
        port: int,
        *,
        backlog: int = 128,
        reuse_address: bool | None = None,
    ) -> None:
        super().__init__(runner, backlog=backlog)
        server = runner.server
        assert server is not None
        self._front = _Front(runner.app[BRIDGE_KEY], server)
        self._host, self._port, self._reuse_address = host, port, reuse_address

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        """The bound port once started (``port=0`` asks the kernel for one)."""
        return self._port

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        front = self._front
        server = await loop.create_server(
            lambda: _Connection(front),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
        )
        self._server = server
        if server.sockets:
            self._port = server.sockets[0].getsockname()[1]
        front.start()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()  # no new connections
        runner: Any = self._runner
        await self._front.shutdown(runner._shutdown_timeout)
        await super().stop()


def run_app(
    app: web.Application,
    *,
    host: str,
    port: int,
    shutdown_timeout: float = 60.0,
    handle_signals: bool = True,
) -> None:
    """Serve ``app`` (a :meth:`bridge.service.Bridge.web_app`, possibly with routes added) on
    ``host:port`` until SIGINT/SIGTERM, like :func:`aiohttp.web.run_app`, with provider
    webhooks on the lean path. Blocks; the loop is closed afterwards."""

    async def serve() -> None:
        runner = web.AppRunner(
            app,
            handle_signals=handle_signals,
            access_log=None,
            shutdown_timeout=shutdown_timeout,
        )
        await runner.setup()
        try:
            await IngressSite(runner, host, port).start()
            await asyncio.Event().wait()  # until a signal ends it
        finally:
            await runner.cleanup()

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(serve())
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(main)
        finally:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            asyncio.set_event_loop(None)


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
