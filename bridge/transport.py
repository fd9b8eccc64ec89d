"""The outbound HTTP transport of webhook deliveries: POST one request, get its status, headers
and the start of its body.

:class:`Transport` is the seam :class:`bridge.webhook.WebhookSender` is built on (unit tests
fake it without sockets); :class:`AiohttpTransport` is the real one, one
``aiohttp.ClientSession`` for the service's life:

* every connection goes to an address checked by the SSRF guard: host names through
  :class:`bridge.ssrf.GuardedResolver` as the connector's resolver (the socket connects to the
  address the guard returned; TLS still verifies the certificate for the host name), IP
  literals (which aiohttp's connector never resolves) checked before each request;
* no proxy variables read (``trust_env=False``: a proxy would make the checked address the
  proxy's), no redirects followed, no cookies kept (an endpoint's ``Set-Cookie`` is not sent
  back to it), no compression asked for and none undone;
* one deadline per attempt (``ClientTimeout(total=...)``: connect, send, head and body);
* the response head bounded by aiohttp's parser limits (line and field size, header count) and
  the body read to ``body_limit`` bytes; a connection whose body was not read to its end is
  closed, not reused.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from aiohttp.abc import AbstractResolver
from yarl import URL

from bridge.config import DeliveryConfig
from bridge.errors import ResponseError
from bridge.ssrf import GuardedResolver, check_ip_literal_host

__all__ = ["AiohttpTransport", "Transport", "TransportResponse"]

# Response head limits (aiohttp's defaults, set here so they are a decision, not an accident).
MAX_LINE_BYTES = 8190
MAX_FIELD_BYTES = 8190
MAX_HEADERS = 128
_PASSED_KEPT = 10_000
_ERROR_CHARS = 200


@dataclass(frozen=True, slots=True)
class TransportResponse:
    """What one POST got back. ``headers`` is looked up case-insensitively by the real
    transport. ``error`` is set when reading the body failed after the status arrived (the
    body then holds what came); the status still counts."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    error: BaseException | None = None


class Transport(Protocol):
    """POSTs one request. Implementations keep connections as they see fit."""

    async def post(self, url: URL, body: bytes, headers: Mapping[str, str]) -> TransportResponse:
        """POST ``body`` with ``headers`` to ``url`` within one deadline.

        Raises:
            TimeoutError: no response status before the deadline.
            OSError: connecting failed, including
                :class:`bridge.ssrf.UnsafeAddressError` (the SSRF guard refused the host).
            ResponseError: the receiver broke HTTP before a status (malformed or oversized
                head, connection closed).
        """
        ...

    async def close(self) -> None:
        """Release connections; idempotent."""
        ...


class AiohttpTransport:
    """The real transport (see the module docstring). Construct it inside a running loop.

    ``limit`` bounds connections overall, ``limit_per_host`` per endpoint origin (tie it to
    ``delivery.max_in_flight_per_endpoint``); idle connections are kept ``keepalive_s``.
    ``resolver`` is the name resolver the SSRF guard wraps (default: aiohttp's threaded one).
    """

    def __init__(
        self,
        *,
        timeout_s: float,
        allow_private: bool,
        limit: int = 512,
        limit_per_host: int = 16,
        body_limit: int = 1024,
        keepalive_s: float = 15.0,
        resolver: AbstractResolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._allow_private = allow_private
        self._body_limit = body_limit
        self._passed: set[str] = set()  # hosts that passed the literal check (it never changes)
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(allow_private=allow_private, resolver=resolver),
            limit=limit,
            limit_per_host=limit_per_host,
            keepalive_timeout=keepalive_s,
            ssl=ssl_context if ssl_context is not None else True,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("Accept", "Accept-Encoding"),
            max_line_size=MAX_LINE_BYTES,
            max_field_size=MAX_FIELD_BYTES,
            max_headers=MAX_HEADERS,
        )

    @classmethod
    def from_config(cls, delivery: DeliveryConfig) -> AiohttpTransport:
        """The transport the ``delivery`` settings describe (deadline, private networks,
        connection limits)."""
        return cls(
            timeout_s=delivery.timeout_s,
            allow_private=delivery.allow_private_networks,
            limit=delivery.max_in_flight,
            limit_per_host=delivery.max_in_flight_per_endpoint,
        )

    async def post(self, url: URL, body: bytes, headers: Mapping[str, str]) -> TransportResponse:
        """See :meth:`Transport.post`. Also raises ValueError for a URL aiohttp refuses."""
        # aiohttp's connector skips the resolver for IP literals: they are checked here.
        host = url.raw_host or ""
        if host not in self._passed:
            check_ip_literal_host(host, allow_private=self._allow_private)
            if len(self._passed) >= _PASSED_KEPT:
                self._passed.clear()
            self._passed.add(host)
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                if resp.status < 200:  # 101 Switching Protocols: no HTTP body follows
                    resp.close()
                    return TransportResponse(resp.status, resp.headers, b"")
                data, error = await _read_capped(resp.content, self._body_limit)
                if error is not None:
                    resp.close()
                return TransportResponse(resp.status, resp.headers, data, error)
        except aiohttp.ClientError as exc:
            if isinstance(exc, OSError | TimeoutError):  # connect failures, deadline
                raise
            raise _response_error(exc) from exc

    async def close(self) -> None:
        """Close the session and its connections; idempotent."""
        await self._session.close()


def _response_error(exc: aiohttp.ClientError) -> ResponseError:
    """A short description of a broken response, without the URL (its query may carry an
    endpoint's token) that aiohttp puts in ``str(ClientResponseError)``."""
    detail = exc.message if isinstance(exc, aiohttp.ClientResponseError) else str(exc)
    return ResponseError(f"{type(exc).__name__}: {detail}"[:_ERROR_CHARS])


async def _read_capped(
    content: aiohttp.StreamReader, limit: int
) -> tuple[bytes, BaseException | None]:
    """At most ``limit`` bytes of a response body, and the error that cut it short, if any."""
    chunks: list[bytes] = []
    kept = 0
    try:
        while kept < limit and not content.at_eof():
            chunk = await content.read(limit - kept)
            if not chunk:
                break
            chunks.append(chunk)
            kept += len(chunk)
    except (TimeoutError, OSError, aiohttp.ClientError) as exc:
        return b"".join(chunks), exc
    return b"".join(chunks), None
