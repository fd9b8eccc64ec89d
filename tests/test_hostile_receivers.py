"""Outbound deliveries against hostile endpoints: raw receivers on 127.0.0.1 that stream an
endless header, answer twice in one write, switch protocols, never answer, or sit behind a
trailing-dot name, and names or literals the SSRF guard must refuse.

Each test drives the real path (``WebhookSender`` over ``AiohttpTransport``, or the whole
Bridge) and checks what an operator would see: the attempt's outcome, the endpoint's state,
the process's memory, whether the event loop kept running.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import ResponseError
from bridge.events import Event
from bridge.retry import Outcome, classify
from bridge.signing import generate_endpoint_secret
from bridge.store.base import Subscriber
from bridge.transport import MAX_FIELD_BYTES, AiohttpTransport
from bridge.webhook import WebhookSender, describe_error
from tests.conftest import BridgeFactory, admin_headers, post_stripe, stripe_event
from tests.raw_receivers import (
    FqdnResolver,
    RawReceiver,
    Script,
    raw_receiver,
    read_request,
    replying,
    self_signed,
    wait_client_close,
)
from tests.receivers import subscription, wait_until

SECRET = generate_endpoint_secret()
ATTACK_ROUNDS = 20  # one per retry an endpoint could make paybridge do
RSS_GROWTH_MAX = 64 * 1024 * 1024  # the unbounded client grew by 0.4-1.6 GB
OK_REPLY = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def _event() -> Event:
    return Event.make(
        type="customer.subscription.started",
        dedupe_key="sub:sub_h:started",
        source="stripe",
        source_event_id="evt_h",
        created=1_760_000_000,
        data_object={"id": "sub_h", "object": "subscription"},
        object_type="subscription",
        object_id="sub_h",
    )


def _sub(url: object) -> Subscriber:
    return Subscriber(
        id="we_hostile", kind="endpoint", enabled_events=["*"], url=str(url), secret=SECRET
    )


@contextlib.asynccontextmanager
async def _sender(**kw: Any) -> AsyncIterator[WebhookSender]:
    kw.setdefault("timeout_s", 5.0)
    kw.setdefault("allow_private", True)
    transport = AiohttpTransport(**kw)
    try:
        yield WebhookSender(transport=transport)
    finally:
        await transport.close()


def _rss_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Ticker:
    """Another coroutine on the same loop: counts its turns and samples the process RSS."""

    def __init__(self) -> None:
        self.ticks = 0
        self.peak_rss = _rss_bytes()

    async def run(self) -> None:
        while True:
            self.ticks += 1
            if self.ticks % 16 == 0:
                self.peak_rss = max(self.peak_rss, _rss_bytes())
            await asyncio.sleep(0)


async def _endless_header_value(
    r: asyncio.StreamReader, w: asyncio.StreamWriter, rcv: RawReceiver
) -> None:
    await read_request(r, rcv)
    rcv.write(w, b"HTTP/1.1 200 OK\r\nX-Endless: ")
    while True:
        rcv.write(w, b"a" * 65536)
        await w.drain()


async def _endless_header_lines(
    r: asyncio.StreamReader, w: asyncio.StreamWriter, rcv: RawReceiver
) -> None:
    await read_request(r, rcv)
    rcv.write(w, b"HTTP/1.1 200 OK\r\n")
    n = 0
    while True:
        rcv.write(w, b"".join(b"X-Line-%d: a\r\n" % (n + i) for i in range(1000)))
        n += 1000
        await w.drain()


@pytest.mark.parametrize("script", [_endless_header_value, _endless_header_lines])
async def test_endless_response_head_fails_the_attempt_with_memory_bounded_and_loop_running(
    script: Script,
) -> None:
    async with raw_receiver(replying(OK_REPLY)) as warm, _sender() as sender:
        assert (await sender.send(_sub(warm.url), _event())).status == 200  # session warmed up
        baseline = _rss_bytes()
        ticker = _Ticker()
        ticking = asyncio.create_task(ticker.run())
        results, ticks_per_attempt = [], []
        try:
            async with raw_receiver(script, path="/hook?token=s3cr3t") as rcv:
                for _ in range(ATTACK_ROUNDS):
                    before = ticker.ticks
                    results.append(await sender.send(_sub(rcv.url), _event()))
                    ticks_per_attempt.append(ticker.ticks - before)
        finally:
            ticking.cancel()
    for res in results:
        assert res.status is None
        assert isinstance(res.error, ResponseError)  # refused by the head limits, not a timeout
        assert "s3cr3t" not in describe_error(res.error)  # the URL's query stays out of it
        assert classify(res.status, res.error) is Outcome.RETRY
    assert rcv.written > ATTACK_ROUNDS * MAX_FIELD_BYTES  # the receiver did stream past the cap
    assert min(ticks_per_attempt) > 0  # the other coroutine ran during every attempt
    assert ticker.peak_rss - baseline < RSS_GROWTH_MAX


async def test_410_then_200_in_one_write_disables_the_endpoint(make_bridge: BridgeFactory) -> None:
    reply = (
        b"HTTP/1.1 410 Gone\r\nContent-Length: 4\r\n\r\ngone"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    )
    async with raw_receiver(replying(reply)) as rcv:
        _bridge, client = await make_bridge()
        resp = await client.post(
            "/api/webhook-endpoints",
            json={"url": str(rcv.url), "enabled_events": ["customer.subscription.*"]},
            headers=admin_headers(),
        )
        endpoint = (await resp.json())["id"]
        status, _ = await post_stripe(
            client, stripe_event("customer.subscription.created", subscription("sub_410"))
        )
        assert status == 200

        async def disabled() -> bool:
            got = await client.get(f"/api/webhook-endpoints/{endpoint}", headers=admin_headers())
            return bool((await got.json())["status"] == "disabled")

        await wait_until(disabled, "endpoint disabled by the first response (410)")
        got = await client.get(f"/api/webhook-endpoints/{endpoint}", headers=admin_headers())
        reason = (await got.json())["disabled_reason"]
    assert "410" in reason


async def test_second_response_in_one_write_is_never_taken_for_the_next_request() -> None:
    reply = (
        b"HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    )
    async with raw_receiver(replying(reply)) as rcv, _sender() as sender:
        first = await sender.send(_sub(rcv.url), _event())
        second = await sender.send(_sub(rcv.url), _event())
    assert (first.status, second.status) == (410, 410)
    assert rcv.connections == 2  # the connection holding the stray 200 was not reused


async def test_101_switching_protocols_is_a_failed_attempt_and_the_sender_carries_on() -> None:
    reply = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    async with (
        raw_receiver(replying(reply)) as switching,
        raw_receiver(replying(OK_REPLY)) as normal,
        _sender() as sender,
    ):
        res = await sender.send(_sub(switching.url), _event())
        after = await sender.send(_sub(normal.url), _event())
    assert res.status == 101
    assert classify(res.status, res.error) is Outcome.RETRY
    assert after.status == 200


async def test_trickled_endless_header_fails_the_attempt_at_its_deadline() -> None:
    """Under every size limit, a byte at a time: only the attempt's deadline ends it."""

    async def script(r: asyncio.StreamReader, w: asyncio.StreamWriter, rcv: RawReceiver) -> None:
        await read_request(r, rcv)
        rcv.write(w, b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while True:
            rcv.write(w, b"a")
            await w.drain()
            await asyncio.sleep(0.01)

    async with raw_receiver(script) as rcv, _sender(timeout_s=0.5) as sender:
        res = await sender.send(_sub(rcv.url), _event())
    assert rcv.written > len(b"HTTP/1.1 200 OK\r\nX-Slow: ")  # it was still trickling
    assert res.status is None
    assert isinstance(res.error, TimeoutError)
    assert describe_error(res.error) == "timeout"


async def _never_answers(
    r: asyncio.StreamReader, w: asyncio.StreamWriter, rcv: RawReceiver
) -> None:
    await read_request(r, rcv)
    await wait_client_close(r, rcv)


async def _half_a_body(r: asyncio.StreamReader, w: asyncio.StreamWriter, rcv: RawReceiver) -> None:
    await read_request(r, rcv)
    rcv.write(w, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
    await w.drain()
    await wait_client_close(r, rcv)


@pytest.mark.parametrize("script", [_never_answers, _half_a_body], ids=["no-head", "mid-body"])
async def test_cancelled_attempt_closes_its_connection(script: Script) -> None:
    async with raw_receiver(script) as rcv, _sender(timeout_s=30.0) as sender:
        attempt = asyncio.create_task(sender.send(_sub(rcv.url), _event()))

        async def request_arrived() -> bool:
            return bool(rcv.heads)

        await wait_until(request_arrived, "the attempt's request")
        attempt.cancel()
        with pytest.raises(asyncio.CancelledError):
            await attempt
        async with asyncio.timeout(10):  # bounded: the receiver sees the close
            await rcv.client_closed.wait()
    assert rcv.closed_by_client == 1


def _tls_server(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    cert, key = self_signed(tmp_path, name)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))


async def test_trailing_dot_host_delivers_over_tls_to_the_checked_address(tmp_path: Path) -> None:
    server_ctx, trusting = _tls_server(tmp_path, "hooks.example.com")
    resolver = FqdnResolver({"hooks.example.com": ["127.0.0.1"]})
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nTLS"
    async with raw_receiver(replying(reply), ssl_context=server_ctx) as rcv:
        url = rcv.url.with_host("hooks.example.com.")
        async with _sender(resolver=resolver, ssl_context=trusting) as sender:
            res = await sender.send(_sub(url), _event())
        async with _sender(resolver=resolver, ssl_context=trusting) as sender:
            plain = await sender.send(_sub(url.with_host("hooks.example.com")), _event())
    assert (res.status, res.response_body, res.error) == (200, "TLS", None)
    assert plain.status == 200
    assert resolver.queries == ["hooks.example.com.", "hooks.example.com"]


async def test_tls_verifies_the_host_name_and_the_certificate(tmp_path: Path) -> None:
    server_ctx, trusting = _tls_server(tmp_path, "hooks.example.com")
    resolver = FqdnResolver(
        {"hooks.example.com": ["127.0.0.1"], "other.example.com": ["127.0.0.1"]}
    )
    async with raw_receiver(replying(OK_REPLY), ssl_context=server_ctx) as rcv:
        async with _sender(resolver=resolver, ssl_context=trusting) as sender:
            wrong_name = await sender.send(_sub(rcv.url.with_host("other.example.com.")), _event())
        async with _sender(resolver=resolver) as sender:  # the system's CAs: not this one
            untrusted = await sender.send(_sub(rcv.url.with_host("hooks.example.com")), _event())
    for res in (wrong_name, untrusted):
        assert res.status is None
        assert isinstance(res.error, OSError)
        assert "certificate" in describe_error(res.error).lower()
    assert rcv.heads == []  # nothing was sent to either


@pytest.mark.parametrize(
    "host",
    [
        "internal.example.com",
        "internal.example.com.",
        "mixed.example.com",
        "127.0.0.1",
        "::1",
        "::ffff:127.0.0.1",
        "169.254.169.254",
    ],
)
async def test_ssrf_guard_refuses_private_names_and_literals(host: str) -> None:
    """By name (also fully qualified, also with one public answer among private ones) and
    by literal: refused before any connection."""
    resolver = FqdnResolver(
        {"internal.example.com": ["127.0.0.1"], "mixed.example.com": ["93.184.216.34", "127.0.0.1"]}
    )
    async with (
        raw_receiver(replying(OK_REPLY)) as rcv,
        _sender(allow_private=False, resolver=resolver) as sender,
    ):
        res = await sender.send(_sub(rcv.url.with_host(host)), _event())
    assert res.status is None
    assert res.error is not None
    assert describe_error(res.error).startswith("refused by SSRF guard")
    assert rcv.connections == 0


async def test_ssrf_guard_refuses_non_canonical_ipv4_literal() -> None:
    async with _sender(allow_private=False) as sender:
        res = await sender.send(_sub("http://2130706433:9/hook"), _event())
    assert res.status is None
    assert res.error is not None
    assert classify(res.status, res.error) is Outcome.RETRY
