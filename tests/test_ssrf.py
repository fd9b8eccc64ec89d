"""Tests for bridge.ssrf: address rules, URL checks, and the guard inside a real aiohttp client."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver
from aiohttp.test_utils import TestServer

from bridge.errors import UnsafeAddressError, UnsafeURLError
from bridge.ssrf import (
    GuardedResolver,
    check_url,
    check_url_syntax,
    find_unsafe_address_error,
    is_forbidden_address,
    resolve_checked,
    ssrf_trace_config,
)
from tests.raw_receivers import FqdnResolver

ServerFactory = Callable[..., Coroutine[Any, Any, TestServer]]

FORBIDDEN = [
    "127.0.0.1",  # loopback
    "127.255.255.254",
    "10.0.0.1",  # private
    "172.16.5.4",
    "192.168.1.1",
    "169.254.169.254",  # link-local (cloud metadata)
    "100.64.0.1",  # carrier-grade NAT
    "224.0.0.1",  # multicast (is_global is True for it!)
    "239.255.255.250",
    "240.0.0.1",  # reserved
    "255.255.255.255",
    "0.0.0.0",
    "192.0.2.1",  # documentation
    "::1",
    "::",
    "fc00::1",  # unique local fc00::/7
    "fd12:3456::1",
    "fe80::1",  # link-local fe80::/10
    "ff02::1",  # multicast
    "ff0e::1",  # global-scope multicast (is_global is True for it!)
    "::ffff:10.0.0.1",  # IPv4-mapped private
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "2002:a00:1::",  # 6to4 of 10.0.0.1
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "2001:db8::1",  # documentation
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700::1", "::ffff:93.184.216.34", "64:ff9b::808:808"]


async def _hello(request: web.Request) -> web.Response:
    return web.Response(text=f"hello {request.host}")


@pytest.fixture
async def server(aiohttp_server: ServerFactory) -> TestServer:
    app = web.Application()
    app.router.add_get("/", _hello)
    return await aiohttp_server(app, host="127.0.0.1")


def _session(
    allow_private: bool, resolver: AbstractResolver | None = None
) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(allow_private=allow_private, resolver=resolver)
    )
    return aiohttp.ClientSession(
        connector=connector,
        trace_configs=[ssrf_trace_config(allow_private=allow_private)],
    )


@pytest.mark.parametrize("address", FORBIDDEN)
def test_is_forbidden_address_refuses_non_public(address: str) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address)) is True


@pytest.mark.parametrize("address", PUBLIC)
def test_is_forbidden_address_allows_public(address: str) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address)) is False


@pytest.mark.parametrize(
    "url",
    ["https://example.com/hook", "http://example.com:8080/x?y=1", "http://[2606:4700::1]/"],
)
def test_check_url_syntax_accepts_http_and_https(url: str) -> None:
    assert check_url_syntax(url) is None  # type: ignore[func-returns-value]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://example.com/", "scheme"),
        ("example.com/hook", "scheme"),
        ("http:///nohost", "host"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://user@example.com/", "credentials"),
        ("http://example.com:0/", "port"),
        ("http://example.com:99999/", "valid URL"),
        ("http://[::1/", "valid URL"),
    ],
)
def test_check_url_syntax_rejects(url: str, reason: str) -> None:
    with pytest.raises(UnsafeURLError, match=reason):
        check_url_syntax(url)


@pytest.mark.parametrize("address", FORBIDDEN)
async def test_check_url_refuses_forbidden_literal(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(UnsafeURLError, match="non-public"):
        await check_url(f"https://{host}/hook", allow_private=False)


@pytest.mark.parametrize("url", ["https://93.184.216.34/hook", "https://[2606:4700::1]:8443/"])
async def test_check_url_allows_public_literal_without_dns(url: str) -> None:
    resolver = FqdnResolver({})
    await check_url(url, allow_private=False, resolver=resolver)
    assert resolver.queries == []


async def test_check_url_refuses_name_resolving_to_private() -> None:
    resolver = FqdnResolver({"internal.example": ["10.1.2.3"]})
    with pytest.raises(UnsafeURLError, match=re.escape("10.1.2.3")):
        await check_url("https://internal.example/hook", allow_private=False, resolver=resolver)


async def test_check_url_refuses_name_with_any_private_answer() -> None:
    resolver = FqdnResolver({"mixed.example": ["93.184.216.34", "::ffff:10.0.0.1"]})
    with pytest.raises(UnsafeURLError, match="non-public"):
        await check_url("https://mixed.example/", allow_private=False, resolver=resolver)


async def test_check_url_allows_name_resolving_to_public() -> None:
    resolver = FqdnResolver({"hooks.example": ["93.184.216.34", "2606:4700::1"]})
    await check_url("https://hooks.example/", allow_private=False, resolver=resolver)
    assert resolver.queries == ["hooks.example"]


async def test_check_url_refuses_unresolvable_host() -> None:
    with pytest.raises(UnsafeURLError, match="does not resolve"):
        await check_url("https://nx.example/", allow_private=False, resolver=FqdnResolver({}))


async def test_check_url_refuses_localhost_with_default_resolver() -> None:
    with pytest.raises(UnsafeURLError, match="non-public"):
        await check_url("http://localhost:8080/", allow_private=False)


async def test_check_url_allow_private_lets_loopback_through() -> None:
    resolver = FqdnResolver({})
    await check_url("http://127.0.0.1:8080/", allow_private=True, resolver=resolver)
    await check_url("http://receiver.internal/", allow_private=True, resolver=resolver)
    assert resolver.queries == []


async def test_check_url_still_checks_syntax_when_private_allowed() -> None:
    with pytest.raises(UnsafeURLError, match="scheme"):
        await check_url("ftp://127.0.0.1/", allow_private=True)


async def test_resolve_checked_returns_the_checked_addresses() -> None:
    resolver = FqdnResolver({"hooks.example": ["93.184.216.34"]})
    results = await resolve_checked("hooks.example", 443, allow_private=False, resolver=resolver)
    assert [(r["host"], r["port"]) for r in results] == [("93.184.216.34", 443)]


async def test_resolve_checked_literal_skips_resolver() -> None:
    resolver = FqdnResolver({})
    results = await resolve_checked("2606:4700::1", 80, allow_private=False, resolver=resolver)
    assert [(r["host"], r["family"]) for r in results] == [("2606:4700::1", socket.AF_INET6)]
    assert resolver.queries == []


async def test_resolve_checked_refuses_empty_answer() -> None:
    resolver = FqdnResolver({"empty.example": []})
    with pytest.raises(UnsafeAddressError, match="no address"):
        await resolve_checked("empty.example", 80, allow_private=False, resolver=resolver)


@pytest.mark.parametrize("host", ["1.2.3", "1::2::3"])
async def test_resolve_checked_refuses_non_canonical_literal(host: str) -> None:
    with pytest.raises(UnsafeAddressError, match="canonical"):
        await resolve_checked(host, 80, allow_private=True)


async def test_guarded_resolver_closes_only_resolvers_it_created() -> None:
    injected = FqdnResolver({"a.example": ["93.184.216.34"]})
    guarded = GuardedResolver(allow_private=False, resolver=injected)
    assert len(await guarded.resolve("a.example", 80)) == 1
    await guarded.close()
    assert injected.closed is False


async def test_guarded_resolver_default_inner_resolves_localhost() -> None:
    guarded = GuardedResolver(allow_private=True)
    results = await guarded.resolve("localhost", 80, family=socket.AF_UNSPEC)
    await guarded.close()
    assert results
    assert all(ipaddress.ip_address(r["host"]).is_loopback for r in results)


async def test_guarded_resolver_refuses_private_answer() -> None:
    guarded = GuardedResolver(
        allow_private=False, resolver=FqdnResolver({"meta.example": ["169.254.169.254"]})
    )
    with pytest.raises(UnsafeAddressError) as info:
        await guarded.resolve("meta.example", 80)
    assert isinstance(info.value, OSError)


async def test_guarded_session_refuses_name_resolving_to_loopback(server: TestServer) -> None:
    resolver = FqdnResolver({"receiver.test": ["127.0.0.1"]})
    async with _session(allow_private=False, resolver=resolver) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.get(f"http://receiver.test:{server.port}/")
    assert isinstance(find_unsafe_address_error(info.value), UnsafeAddressError)
    assert resolver.queries == ["receiver.test"]


async def test_guarded_session_refuses_localhost_via_default_resolver(server: TestServer) -> None:
    async with _session(allow_private=False) as session:
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            await session.get(f"http://localhost:{server.port}/")
    assert find_unsafe_address_error(info.value) is not None


async def test_guarded_session_refuses_loopback_literal(server: TestServer) -> None:
    async with _session(allow_private=False) as session:
        with pytest.raises(OSError) as info:
            await session.get(f"http://127.0.0.1:{server.port}/")
    assert isinstance(find_unsafe_address_error(info.value), UnsafeAddressError)


async def test_guarded_session_refuses_mapped_ipv6_literal() -> None:
    async with _session(allow_private=False) as session:
        with pytest.raises(OSError) as info:
            await session.get("http://[::ffff:127.0.0.1]:9/")
    assert isinstance(find_unsafe_address_error(info.value), UnsafeAddressError)


async def test_guarded_session_allow_private_connects_to_checked_address(
    server: TestServer,
) -> None:
    resolver = FqdnResolver({"receiver.test": ["127.0.0.1"]})
    async with (
        _session(allow_private=True, resolver=resolver) as session,
        session.get(f"http://receiver.test:{server.port}/") as response,
    ):
        text = await response.text()
    assert response.status == 200
    assert text == f"hello receiver.test:{server.port}"


async def test_guarded_session_allow_private_connects_to_literal(server: TestServer) -> None:
    async with (
        _session(allow_private=True) as session,
        session.get(f"http://127.0.0.1:{server.port}/") as response,
    ):
        assert response.status == 200
        assert await response.text() == f"hello 127.0.0.1:{server.port}"


def test_find_unsafe_address_error_is_none_for_other_errors() -> None:
    assert find_unsafe_address_error(ConnectionRefusedError()) is None
    wrapped = RuntimeError("outer")
    wrapped.__cause__ = UnsafeAddressError("inner")
    assert isinstance(find_unsafe_address_error(wrapped), UnsafeAddressError)
