"""SSRF guard for outbound webhook endpoints.

Endpoint URLs are checked at registration (:func:`check_url`) and again at every delivery.
At delivery the check lives *inside* the HTTP client so that the connection goes to exactly the
address that was checked (no DNS-rebinding window between check and connect)::

    connector = aiohttp.TCPConnector(resolver=GuardedResolver(allow_private=False))
    session = aiohttp.ClientSession(
        connector=connector,
        trace_configs=[ssrf_trace_config(allow_private=False)],
        trust_env=False,  # a proxy would make the checked address the proxy's, not the target's
    )
    await session.post(url, ..., allow_redirects=False)  # redirects are never followed

Two parts are needed because aiohttp's ``TCPConnector`` skips the resolver for IP-literal
hosts (``_resolve_host``: ``if is_ip_address(host): return [...]``, aiohttp 3.14):
:class:`GuardedResolver` covers host names, :func:`ssrf_trace_config` covers IP literals.
paybridge's transport (:class:`bridge.transport.AiohttpTransport`) calls
:func:`check_ip_literal_host` itself before each request instead of installing the trace
config (whose signals cost every request several coroutine calls).
A refused host name surfaces as ``aiohttp.ClientConnectorDNSError`` whose ``os_error`` is an
:class:`UnsafeAddressError`; a refused literal raises :class:`UnsafeAddressError` itself.
Both are ``OSError``; :func:`find_unsafe_address_error` finds the cause in either case.
``allow_redirects=False`` is part of the guard, not a style choice: ``on_request_start`` runs
once per ``session.request`` call, so a redirect to an IP literal would not be checked.

Rule (:func:`is_forbidden_address`): an address is forbidden unless it is globally routable
(``ipaddress``'s ``is_global``) and not multicast, reserved, private, loopback, link-local or
unspecified. IPv6 addresses that embed an IPv4 address (IPv4-mapped ``::ffff:0:0/96``, 6to4
``2002::/16``, NAT64 ``64:ff9b::/96``) are judged by the embedded IPv4 address. If *any*
resolved address of a host is forbidden the whole host is refused: a name that mixes public and
private answers is a rebinding attempt, not a configuration to work around.

URLs with userinfo (``https://user:pass@host/``) are refused: credentials do not belong in an
endpoint URL (it is logged and shown in the admin API), and ``@`` is a classic way to disguise
the real host from a human reviewer.
"""

from __future__ import annotations

import ipaddress
import socket
from types import SimpleNamespace
from typing import TypeAlias

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

from bridge.errors import UnsafeAddressError, UnsafeURLError

__all__ = [
    "GuardedResolver",
    "IPAddress",
    "ResolvedAddress",
    "check_ip_literal_host",
    "check_url",
    "check_url_syntax",
    "find_unsafe_address_error",
    "is_forbidden_address",
    "resolve_checked",
    "ssrf_trace_config",
]

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
ResolvedAddress: TypeAlias = ResolveResult

_ALLOWED_SCHEMES = frozenset({"http", "https"})
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")


def check_url_syntax(url: str) -> None:
    """Check an endpoint URL's shape: ``http``/``https``, a host, no userinfo, a port in 1-65535.

    Raises:
        UnsafeURLError: the URL is unparseable or breaks one of the rules above.
    """
    _parse(url)


def _parse(url: str) -> tuple[str, int]:
    try:
        parsed = URL(url)
        port = parsed.port
    except ValueError as exc:  # yarl: bad port, bad IPv6 literal, ...
        raise UnsafeURLError(f"endpoint URL is not a valid URL: {exc}") from None
    if parsed.scheme not in _ALLOWED_SCHEMES:
        raise UnsafeURLError("endpoint URL scheme must be http or https")
    if not parsed.host:
        raise UnsafeURLError("endpoint URL has no host")
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise UnsafeURLError("endpoint URL must not contain credentials (user:password@)")
    if port is None or not 1 <= port <= 65535:
        raise UnsafeURLError("endpoint URL port must be in 1-65535")
    return parsed.host, port


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64_WELL_KNOWN:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_forbidden_address(ip: IPAddress) -> bool:
    """True unless ``ip`` is a globally routable unicast address (see the module docstring).

    Never raises.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            return is_forbidden_address(embedded)
    return (
        not ip.is_global
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
    )


def _looks_like_ip_literal(host: str) -> bool:
    # Same heuristic as aiohttp.helpers.is_ip_address: exactly the hosts whose resolution
    # the connector skips, so exactly the hosts the resolver never sees.
    return ":" in host or host.replace(".", "").isdigit()


def _literal_ip(host: str) -> IPAddress | None:
    """The address of an IP-literal host, None for a host name.

    Raises:
        UnsafeAddressError: the host looks like an IP literal but is not a canonical one.
    """
    if not _looks_like_ip_literal(host):
        return None
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise UnsafeAddressError(f"{host!r} is not a canonical IP address") from None


def _check_address(host: str, ip: IPAddress, allow_private: bool) -> None:
    if not allow_private and is_forbidden_address(ip):
        raise UnsafeAddressError(
            f"{host!r} resolves to {ip}, a non-public address "
            "(set delivery.allow_private_networks to allow it)"
        )


async def resolve_checked(
    host: str,
    port: int,
    *,
    allow_private: bool,
    resolver: AbstractResolver | None = None,
    family: socket.AddressFamily = socket.AF_UNSPEC,
) -> list[ResolvedAddress]:
    """Resolve ``host`` and return its addresses, refusing the host if any is forbidden.

    IP literals are checked without resolution. ``resolver`` defaults to a fresh
    ``aiohttp.resolver.ThreadedResolver`` (closed again before returning).

    Raises:
        UnsafeAddressError: an address is forbidden (and ``allow_private`` is false), the host
            resolved to nothing, or it is a non-canonical IP literal.
        OSError: resolution failed (``socket.gaierror`` from the resolver).
    """
    literal = _literal_ip(host)
    if literal is not None:
        _check_address(host, literal, allow_private)
        literal_family = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
        return [
            ResolveResult(
                hostname=host, host=str(literal), port=port, family=literal_family, proto=0, flags=0
            )
        ]
    own = resolver is None
    active = ThreadedResolver() if resolver is None else resolver
    try:
        results = await active.resolve(host, port, family=family)
    finally:
        if own:
            await active.close()
    if not results:
        raise UnsafeAddressError(f"{host!r} resolved to no address")
    for result in results:
        _check_address(host, ipaddress.ip_address(result["host"]), allow_private)
    return results


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that only ever returns checked addresses.

    Wraps ``resolver`` (default: aiohttp's ``ThreadedResolver``, created on first use) and
    raises :class:`UnsafeAddressError` when any resolved address is forbidden, unless
    ``allow_private``. Pair it with :func:`ssrf_trace_config` for IP-literal hosts.
    """

    def __init__(self, *, allow_private: bool, resolver: AbstractResolver | None = None) -> None:
        self.allow_private = allow_private
        self._inner = resolver
        self._owns_inner = resolver is None

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve and check ``host``.

        Raises:
            UnsafeAddressError: see :func:`resolve_checked`.
            OSError: resolution failed.
        """
        if self._inner is None:
            self._inner = ThreadedResolver()
        return await resolve_checked(
            host, port, allow_private=self.allow_private, resolver=self._inner, family=family
        )

    async def close(self) -> None:
        """Close the wrapped resolver if this instance created it. Never raises by itself."""
        if self._owns_inner and self._inner is not None:
            await self._inner.close()


def check_ip_literal_host(host: str, *, allow_private: bool) -> None:
    """Refuse an IP-literal ``host`` that is not canonical or not allowed; a host name passes
    (:class:`GuardedResolver` checks what it resolves to, at connect time).

    Raises:
        UnsafeAddressError: the literal is refused.
    """
    literal = _literal_ip(host)
    if literal is not None:
        _check_address(host, literal, allow_private)


def ssrf_trace_config(*, allow_private: bool) -> aiohttp.TraceConfig:
    """A ``TraceConfig`` refusing requests to forbidden IP-literal hosts before connecting.

    The callback raises :class:`UnsafeAddressError` out of ``session.request(...)``.
    Host names are left to :class:`GuardedResolver`.
    """

    async def _on_request_start(
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        check_ip_literal_host(params.url.raw_host or "", allow_private=allow_private)

    trace_config = aiohttp.TraceConfig()
    trace_config.on_request_start.append(_on_request_start)
    return trace_config


def find_unsafe_address_error(exc: BaseException) -> UnsafeAddressError | None:
    """The :class:`UnsafeAddressError` behind a failed request, if the guard caused it.

    Looks at ``exc`` itself, ``ClientConnectorError.os_error`` and the ``__cause__`` chain.
    Never raises.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, UnsafeAddressError):
            return current
        if isinstance(current, aiohttp.ClientConnectorError):
            current = current.os_error
        else:
            current = current.__cause__
    return None


async def check_url(
    url: str, *, allow_private: bool, resolver: AbstractResolver | None = None
) -> None:
    """Registration-time check: syntax, then (unless ``allow_private``) the host's addresses.

    Raises:
        UnsafeURLError: bad syntax, a forbidden address, or a host that does not resolve
            (an endpoint nobody can reach is refused rather than registered).
    """
    host, port = _parse(url)
    if allow_private:
        return
    try:
        await resolve_checked(host, port, allow_private=False, resolver=resolver)
    except UnsafeAddressError as exc:
        raise UnsafeURLError(f"endpoint URL refused: {exc.strerror}") from exc
    except OSError as exc:
        raise UnsafeURLError(f"endpoint host {host!r} does not resolve: {exc}") from exc
