"""Raw HTTP/1.1 over 127.0.0.1 sockets, for tests that send what no HTTP client would: oversize
heads, bare LF, pipelined floods, requests split at arbitrary bytes.

Every read is bounded (``timeout_s``) and fails the test instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
from collections.abc import AsyncIterator

import orjson

from tests.conftest import stripe_event, stripe_headers
from tests.receivers import subscription

__all__ = [
    "Response",
    "connect",
    "exchange",
    "read_response",
    "request",
    "send_in_pieces",
    "signed_event",
    "wait_for_listener",
]

Response = tuple[int, dict[str, str], bytes]


async def read_response(reader: asyncio.StreamReader, timeout_s: float = 10.0) -> Response:
    """One response: status, headers (lower-case names) and the Content-Length body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout_s)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), timeout_s)
    return status, headers, body


@contextlib.asynccontextmanager
async def connect(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A connection to 127.0.0.1:``port``, closed afterwards."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def exchange(port: int, raw: bytes, responses: int = 1) -> list[Response]:
    """Write ``raw`` on a new connection at once and read ``responses`` answers."""
    async with connect(port) as (reader, writer):
        writer.write(raw)
        return [await read_response(reader) for _ in range(responses)]


async def send_in_pieces(port: int, raw: bytes, piece: int) -> Response:
    """Write ``raw`` ``piece`` bytes at a time, each its own ``send``, and read the answer.
    Sending stops when the server hangs up: it may answer and close before the last piece.
    (A blocking socket in a thread: after a reset the kernel still hands over the answer that
    came before it, where asyncio's streams would drop it.)"""
    return await asyncio.to_thread(_send_in_pieces, port, raw, piece)


def _send_in_pieces(port: int, raw: bytes, piece: int) -> Response:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for i in range(0, len(raw), piece):
                sock.sendall(raw[i : i + piece])
        except OSError:
            pass
        data = b""
        while b"\r\n\r\n" not in data:
            more = sock.recv(65536)
            if not more:
                raise ConnectionError(f"closed without an answer after {data!r}")
            data += more
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ")[1]), headers, body


def request(
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    target: str = "/webhooks/stripe",
    method: str = "POST",
    extra: list[str] | None = None,
) -> bytes:
    """A request with CRLF line endings: a correctly signed Stripe POST of ``body`` unless
    ``headers`` says otherwise; ``extra`` header lines go after the others."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    for name, value in (headers if headers is not None else stripe_headers(body)).items():
        lines.append(f"{name}: {value}")
    lines.extend(extra or [])
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def signed_event(event_id: str) -> bytes:
    """The body of a Stripe ``customer.subscription.created`` event with id ``event_id``."""
    sub = subscription(f"sub_{event_id}")
    return orjson.dumps(stripe_event("customer.subscription.created", sub, event_id=event_id))


def wait_for_listener(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """Return once 127.0.0.1:``port`` accepts connections; fail if ``proc`` exits first or
    ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        assert time.monotonic() < deadline and proc.poll() is None, "the server did not start"
        time.sleep(0.05)
