"""bridge/dispatch.py end to end: real ingress, real SQLite, real local receivers.

Retries use the compressed schedule of ``tests/conftest.py`` ([0.2, 0.4, 0.8], no jitter);
tests that must control *when* a retry is due run the Bridge on a :class:`ManualClock`.
Nothing here asserts on how long anything took: waits are bounded, outcomes are data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient
from standardwebhooks import Webhook

from bridge.service import Bridge
from tests.conftest import admin_headers, make_config, post_stripe, stripe_event
from tests.receivers import (
    ManualClock,
    always,
    fail_first,
    held_by,
    ok,
    redirect_to,
    retry_after_first,
    running,
    subscription,
    wait_until,
)

Client = TestClient[Any, Any]
Start = Callable[..., Awaitable[tuple[Bridge, Client]]]
STARTED = "customer.subscription.started"


@pytest.fixture
def start(tmp_path: Path, aiohttp_client: AiohttpClient) -> Start:
    """``await start(extra_yaml, clock=None)``: a started Bridge on ``tmp_path``'s SQLite file
    (the same file on every call: a second call is a restart) and its test client."""

    async def factory(
        extra_yaml: str = "", clock: ManualClock | None = None
    ) -> tuple[Bridge, Client]:
        config = make_config(tmp_path, extra_yaml)
        bridge = Bridge(config, clock=clock) if clock is not None else Bridge(config)
        return bridge, await aiohttp_client(bridge.web_app())

    return factory


async def _endpoint(client: Client, url: str, events: list[str], **more: Any) -> dict[str, Any]:
    resp = await client.post(
        "/api/webhook-endpoints",
        json={"url": url, "enabled_events": events, **more},
        headers=admin_headers(),
    )
    assert resp.status == 200, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


async def _subscribe(client: Client, sub_id: str) -> list[str]:
    """Post ``customer.subscription.created`` (active); returns the canonical event ids."""
    status, body = await post_stripe(
        client, stripe_event("customer.subscription.created", subscription(sub_id))
    )
    assert status == 200, body
    ids: list[str] = body["events"]
    return ids


async def _attempts(client: Client, event_id: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/webhook-attempts?event_id={event_id}", headers=admin_headers())
    assert resp.status == 200
    data: list[dict[str, Any]] = (await resp.json())["list"]
    return sorted(data, key=lambda a: a["attempt"])


async def _event_of_type(client: Client, ids: list[str], type_: str) -> str:
    for event_id in ids:
        resp = await client.get(f"/api/events/{event_id}", headers=admin_headers())
        if (await resp.json())["type"] == type_:
            return event_id
    raise AssertionError(f"no {type_} among {ids}")


async def test_dispatch_retries_5xx_then_delivers_with_stable_webhook_id(start: Start) -> None:
    async with running(fail_first(2)) as (rcv,):
        bridge, client = await start()
        ep = await _endpoint(client, rcv.url(), [STARTED])
        ids = await _subscribe(client, "sub_retry")
        reqs = await rcv.wait_count(3)
        started = await _event_of_type(client, ids, STARTED)
        assert {r.headers["webhook-id"] for r in reqs} == {started}
        for r in reqs:
            assert Webhook(ep["secret"]).verify(r.body, dict(r.headers))["type"] == STARTED

        async def logged() -> bool:
            return len(await _attempts(client, started)) == 3

        await wait_until(logged, "three attempts logged")
        attempts = await _attempts(client, started)
    assert [a["status"] for a in attempts] == ["failed", "failed", "succeeded"]
    assert [a["response_status"] for a in attempts] == [500, 500, 200]
    assert [a["retry_count"] for a in attempts] == [0, 1, 2]
    assert attempts[0]["response_body"] == "boom"
    assert all(a["duration_ms"] is not None and a["created_at"] for a in attempts)
    assert {a["webhook_endpoint_id"] for a in attempts} == {ep["id"]}
    assert attempts[-1]["delivery_status"] == "delivered"
    assert (await bridge.store.counts())["pending"] == 0


async def test_dispatch_410_disables_endpoint(start: Start) -> None:
    async with running(always(410, "gone")) as (rcv,):
        bridge, client = await start()
        ep = await _endpoint(client, rcv.url(), ["customer.subscription.*"])
        await _subscribe(client, "sub_gone_1")

        async def disabled() -> bool:
            resp = await client.get(f"/api/webhook-endpoints/{ep['id']}", headers=admin_headers())
            return bool((await resp.json())["status"] == "disabled")

        await wait_until(disabled, "endpoint disabled after 410")
        assert bridge.dispatcher is not None
        await bridge.dispatcher.wait_idle()
        seen = len(rcv.requests)
        await _subscribe(client, "sub_gone_2")  # no delivery row for a disabled endpoint
        counts = await bridge.store.counts()
        resp = await client.get(f"/api/webhook-endpoints/{ep['id']}", headers=admin_headers())
        body = await resp.json()
    assert seen <= 2  # the two events of the first subscription, at most, and no retry
    assert len(rcv.requests) == seen
    assert counts["pending"] == 0
    assert "410" in body["disabled_reason"]


async def test_dispatch_retry_after_is_honoured_and_clamped(start: Start) -> None:
    clock = ManualClock()
    async with running(retry_after_first("3600")) as (rcv,):
        bridge, client = await start("delivery:\n  retry_after_max_s: 30\n", clock=clock)
        await _endpoint(client, rcv.url(), [STARTED])
        await _subscribe(client, "sub_ra")
        await rcv.wait_count(1)
        dispatcher = bridge.dispatcher
        assert dispatcher is not None
        await wait_until(lambda: _no_pending_attempts(bridge), "first attempt recorded as finished")
        clock.advance(29.5)  # the schedule alone would retry after 0.2 s
        await dispatcher.tick()
        await dispatcher.wait_idle()
        assert len(rcv.requests) == 1
        clock.advance(0.5)  # Retry-After 3600, clamped to retry_after_max_s = 30
        await dispatcher.tick()
        await rcv.wait_count(2)
    assert rcv.requests[0].headers["webhook-id"] == rcv.requests[1].headers["webhook-id"]


async def _no_pending_attempts(bridge: Bridge) -> bool:
    page = await bridge.store.list_attempts(limit=100)
    return bool(page.items) and all(a.status != "pending" for a in page.items)


async def test_dispatch_dead_after_last_attempt_then_resend_delivers(start: Start) -> None:
    async with running(always(503, "down")) as (rcv,):
        bridge, client = await start()
        ep = await _endpoint(client, rcv.url(), [STARTED])
        ids = await _subscribe(client, "sub_dead")
        started = await _event_of_type(client, ids, STARTED)

        async def dead() -> bool:
            return (await bridge.store.counts())["dead"] == 1

        await wait_until(dead, "delivery dead after the schedule")
        attempts = await _attempts(client, started)
        assert len(attempts) == 4  # the first attempt + one per schedule entry
        assert {a["delivery_status"] for a in attempts} == {"dead"}
        assert len(rcv.requests) == 4

        rcv.script = ok()
        resp = await client.post(
            f"/api/events/{started}/resend", json={"endpoint_id": ep["id"]}, headers=admin_headers()
        )
        assert resp.status == 200
        assert len((await resp.json())["deliveries"]) == 1
        await rcv.wait_count(5)

        async def delivered() -> bool:
            return any(a["status"] == "succeeded" for a in await _attempts(client, started))

        await wait_until(delivered, "the resent delivery succeeded")
        resp = await client.get(f"/api/events/{started}", headers=admin_headers())
        event = await resp.json()
    assert rcv.requests[-1].headers["webhook-id"] == started
    assert len(event["attempts"]) == 5
    assert (await bridge.store.counts())["dead"] == 1  # the dead delivery is kept


async def test_dispatch_disables_endpoint_failing_too_long(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    caplog.set_level(logging.WARNING, logger="bridge.dispatch")
    async with running(always(500)) as (rcv,):
        bridge, client = await start(
            "delivery:\n  disable_after_failing_s: 10\n  schedule_s: [1, 1, 1, 1, 1]\n",
            clock=clock,
        )
        ep = await _endpoint(client, rcv.url(), [STARTED])
        await _subscribe(client, "sub_failing")
        await rcv.wait_count(1)
        await wait_until(lambda: _no_pending_attempts(bridge), "first attempt finished")
        clock.advance(5)  # failing for 5 s: still enabled
        await rcv.wait_count(2)
        await wait_until(lambda: _attempt_count(bridge, 2), "second attempt finished")
        sub = await bridge.store.get_subscriber(ep["id"])
        assert sub is not None and sub.status == "enabled"
        clock.advance(6)  # failing for 11 s > 10 s
        await rcv.wait_count(3)

        async def disabled() -> bool:
            s = await bridge.store.get_subscriber(ep["id"])
            return s is not None and s.status == "disabled"

        await wait_until(disabled, "endpoint disabled after failing too long")
        await wait_until(
            lambda: _logged(caplog, f"endpoint_disabled subscriber_id={ep['id']}"), "disable logged"
        )
        clock.advance(5)
        assert bridge.dispatcher is not None
        await bridge.dispatcher.tick()
        await bridge.dispatcher.wait_idle()
    assert len(rcv.requests) == 3  # nothing more goes to a disabled endpoint
    assert "failing for 10s straight" in _reason(caplog)


async def _attempt_count(bridge: Bridge, n: int) -> bool:
    page = await bridge.store.list_attempts(limit=100)
    return len(page.items) >= n and all(a.status != "pending" for a in page.items)


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in r.getMessage() for r in caplog.records)


def _reason(caplog: pytest.LogCaptureFixture) -> str:
    return next(r.getMessage() for r in caplog.records if "endpoint_disabled " in r.getMessage())


async def test_dispatch_slow_endpoint_does_not_delay_others(start: Start) -> None:
    gate = asyncio.Event()
    async with running(held_by(gate), ok()) as (slow, fast):
        _, client = await start("delivery:\n  max_in_flight_per_endpoint: 1\n  timeout_s: 60\n")
        await _endpoint(client, slow.url(), ["customer.subscription.*"])
        await _endpoint(client, fast.url(), ["customer.subscription.*"])
        ids: list[str] = []
        for i in range(4):
            ids += await _subscribe(client, f"sub_iso_{i}")
        got = await fast.wait_count(len(ids))
        stuck = len(slow.requests)
        gauges = _gauges(await (await client.get("/metrics")).text())
        gate.set()
        await slow.wait_count(len(ids))
    assert {r.headers["webhook-id"] for r in got} == set(ids)
    assert stuck == 1  # the slow endpoint held its one slot the whole time
    # read when scraped: the slow endpoint's attempt in flight, the rest queued behind it
    assert gauges["paybridge_deliveries_queued"] == len(ids) - 1
    assert gauges["paybridge_deliveries_in_flight"] >= 1
    assert {r.headers["webhook-id"] for r in slow.requests} == set(ids)


async def test_dispatch_pending_retries_resume_after_restart(start: Start, tmp_path: Path) -> None:
    frozen = ManualClock()  # the first instance never sees a retry come due
    async with running(always(500)) as (rcv,):
        bridge, client = await start(clock=frozen)
        ep = await _endpoint(client, rcv.url(), ["customer.subscription.*"])
        ids = await _subscribe(client, "sub_restart")
        await rcv.wait_count(len(ids))
        await wait_until(lambda: _no_pending_attempts(bridge), "first attempts finished")
        await client.close()  # graceful stop: retries still pending in SQLite
        assert _pending_in_file(tmp_path) == len(ids)

        rcv.script = ok()
        await start()  # same SQLite file, real clock
        delivered = await rcv.wait_for(
            lambda reqs: {r.headers["webhook-id"] for r in reqs[len(ids) :]} >= set(ids),
            "every pending delivery after the restart",
        )
    for r in delivered:
        Webhook(ep["secret"]).verify(r.body, dict(r.headers))


def _gauges(metrics: str) -> dict[str, float]:
    """Unlabelled samples of a Prometheus text exposition."""
    out: dict[str, float] = {}
    for line in metrics.splitlines():
        name, _, value = line.partition(" ")
        if line and not line.startswith("#") and "{" not in name:
            out[name] = float(value)
    return out


def _pending_in_file(tmp_path: Path) -> int:
    """Pending, unleased deliveries in the stopped bridge's SQLite file."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(tmp_path / "paybridge.db")) as conn:
        (n,) = conn.execute(
            "SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND lease_owner IS NULL"
        ).fetchone()
    return int(n)


async def test_dispatch_redirect_is_a_failure_and_location_never_requested(start: Start) -> None:
    async with running(ok()) as (target,), running(redirect_to(target.url())) as (rcv,):
        _, client = await start()
        await _endpoint(client, rcv.url(), [STARTED])
        ids = await _subscribe(client, "sub_redirect")
        started = await _event_of_type(client, ids, STARTED)
        await rcv.wait_count(2)  # retried

        async def two_failed() -> bool:
            done = [a for a in await _attempts(client, started) if a["status"] == "failed"]
            return len(done) >= 2

        await wait_until(two_failed, "two failed attempts")
        attempts = await _attempts(client, started)
    assert target.requests == []
    assert {a["response_status"] for a in attempts if a["status"] == "failed"} == {302}


async def test_dispatch_ssrf_guard_refuses_private_address_at_delivery(start: Start) -> None:
    async with running(ok()) as (rcv,):
        yaml = (
            "delivery:\n  allow_private_networks: false\n"
            "endpoints:\n"
            f"  - id: we_local\n    url: {rcv.url()}\n"
            f"    enabled_events: [{STARTED}]\n"
            "    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"
        )
        _, client = await start(yaml)
        ids = await _subscribe(client, "sub_ssrf")
        started = await _event_of_type(client, ids, STARTED)

        async def refused() -> bool:
            return any(
                (a["error"] or "").startswith("refused by SSRF guard")
                for a in await _attempts(client, started)
            )

        await wait_until(refused, "an attempt refused by the SSRF guard")
    assert rcv.requests == []


async def test_dispatch_stripe_scheme_verifies_with_stripe_library(start: Start) -> None:
    import stripe

    secret = "whsec_stripe_scheme_endpoint_secret"
    async with running(ok()) as (rcv,):
        _, client = await start()
        await _endpoint(client, rcv.url(), [STARTED], signature="stripe", secret=secret)
        ids = await _subscribe(client, "sub_stripe_scheme")
        (req,) = await rcv.wait_count(1)
    header = req.headers["X-Webhook-Signature"]
    assert stripe.WebhookSignature.verify_header(req.body.decode(), header, secret, tolerance=300)
    assert req.headers["webhook-id"] in ids


async def test_dispatch_blocklet_scheme_verifies_component_signature(start: Start) -> None:
    import orjson

    from bridge.blocklet import generate_secret_key, public_key_of, verify_component

    key = generate_secret_key()
    async with running(ok()) as (rcv,):
        yaml = (
            "sources:\n  stripe:\n    signing_secrets: [whsec_test_stripe_secret_0123456789]\n"
            f"  payment_kit:\n    app_secret_key: '{key}'\n"
            "endpoints:\n"
            f"  - id: we_blocklet\n    url: {rcv.url('/api/cb')}\n"
            f"    enabled_events: [{STARTED}]\n    signature: blocklet\n"
        )
        bridge, client = await start(yaml)
        ids = await _subscribe(client, "sub_blocklet")
        (req,) = await rcv.wait_count(1)
    body = orjson.loads(req.body)
    verify_component(
        req.headers,
        body=body,
        method="POST",
        path="/api/cb",
        query={},
        public_key=public_key_of(key),
        now=bridge.clock(),
    )
    assert body["id"] in ids
    assert body["type"] == STARTED


async def test_dispatch_backlog_on_slow_endpoint_never_starves_retries_elsewhere(
    start: Start,
) -> None:
    gate = asyncio.Event()
    n_subs = 3
    # The fast endpoint fails every first attempt, so all its deliveries need the poll loop
    # to claim their retries while the slow endpoint's backlog sits queued.
    async with running(held_by(gate), fail_first(2 * n_subs)) as (slow, fast):
        _, client = await start(
            "delivery:\n  max_in_flight: 2\n  max_in_flight_per_endpoint: 1\n  timeout_s: 60\n"
        )
        await _endpoint(client, slow.url(), ["customer.subscription.*"])
        await _endpoint(client, fast.url(), ["customer.subscription.*"])
        ids: list[str] = []
        for i in range(n_subs):
            ids += await _subscribe(client, f"sub_backlog_{i}")
        got = await fast.wait_count(2 * len(ids))
        stuck = len(slow.requests)
        gate.set()
        await slow.wait_count(len(ids))
    assert stuck == 1
    assert {r.headers["webhook-id"] for r in got[len(ids) :]} == set(ids)


async def test_dispatch_attempt_abandoned_at_shutdown_is_retried_at_next_start(
    start: Start,
) -> None:
    gate = asyncio.Event()
    async with running(held_by(gate)) as (rcv,):
        yaml = "server:\n  shutdown_timeout_s: 0.1\ndelivery:\n  timeout_s: 60\n"
        _, client = await start(yaml)
        await _endpoint(client, rcv.url(), [STARTED])
        ids = await _subscribe(client, "sub_abandoned")
        await rcv.wait_count(1)  # the attempt is in flight, held by the receiver
        await client.close()  # stop gives up on it after shutdown_timeout_s
        gate.set()
        # Its lease was given back: the next instance retries now, not after lease_s.
        _, client2 = await start(yaml)
        reqs = await rcv.wait_count(2)
        attempts = await _attempts(client2, reqs[0].headers["webhook-id"])
    assert reqs[0].headers["webhook-id"] == reqs[1].headers["webhook-id"]
    assert reqs[1].headers["webhook-id"] in ids
    assert attempts[0]["status"] == "failed"
    assert attempts[0]["error"] == "abandoned: paybridge stopped mid-attempt"


async def test_burst_starts_every_bus_handler_before_the_first_webhook_post(
    start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group commit that releases many events at once (after a slow fsync, say) starts every
    event's bus handler before the first of their webhook POSTs is built and sent, instead of
    each handler waiting behind the POSTs of all earlier events."""
    import time

    from adapters.base import InboundRequest
    from tests.conftest import stripe_headers

    order: list[str] = []

    def register(bridge: Bridge) -> None:
        @bridge.bus.on(STARTED, name="clock")
        async def clock(_event: Any) -> None:
            order.append("handler")

    async with running(ok()) as (rcv,):
        bridge, client = await start()
        register(bridge)  # before the app starts, like make_bridge's register
        async with client:
            await _endpoint(client, rcv.url(), [STARTED])
            assert bridge.dispatcher is not None
            real_post = bridge.dispatcher._post

            async def post(*a: Any, **k: Any) -> Any:
                order.append("post")
                return await real_post(*a, **k)

            monkeypatch.setattr(bridge.dispatcher, "_post", post)
            worker = bridge.store._worker  # type: ignore[attr-defined]
            held = asyncio.ensure_future(worker.call(lambda conn: time.sleep(0.1)))
            await asyncio.sleep(0.02)  # the writer is held: the ingests below share one group
            bodies = [
                orjson.dumps(
                    stripe_event("customer.subscription.created", subscription(f"sub_burst{i}"))
                )
                for i in range(12)
            ]
            results = await asyncio.gather(
                *(
                    bridge.ingest(
                        "stripe",
                        InboundRequest(
                            "POST", "/webhooks/stripe", {}, stripe_headers(b), b, time.time()
                        ),
                    )
                    for b in bodies
                )
            )
            await held
            assert all(len(r.events) == 2 for r in results)
            await wait_until(lambda: _true(len(rcv.requests) == 12), "all 12 webhooks delivered")
    assert order.count("handler") == 12 and order.count("post") == 12
    assert order.index("post") == 12, order  # every handler first, then the POSTs


async def _true(value: bool) -> bool:
    return value
