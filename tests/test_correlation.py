"""The Stripe correlation owner through the running service, no API key: held PaymentIntents
decided on the bridge's clock, and the hourly warning while decisions rest on the
customer/amount match."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from bridge.correlation import MATCH_WARNING_EVERY_S
from bridge.service import Bridge
from tests.adapters.scenarios.stripe_factories import (
    StripeFeed,
    invoice,
    invoice_payment,
    payment_intent,
    price,
)
from tests.conftest import make_config, post_stripe
from tests.receivers import OffsetClock, nothing_held, wait_until

WARNING = "matched to invoices by customer, amount and currency"


async def _bridge(tmp_path: Path, aiohttp_client: AiohttpClient) -> tuple[Bridge, OffsetClock, Any]:
    clock = OffsetClock()
    config = make_config(tmp_path, "sources: {{stripe: {{correlation_window_s: 30}}}}")
    bridge = Bridge(config, clock=clock)
    client = await aiohttp_client(bridge.web_app())
    return bridge, clock, client


async def _decided(bridge: Bridge) -> None:
    await wait_until(lambda: nothing_held(bridge.store), "held PaymentIntent never decided")


async def _one_time_payment(
    feed: StripeFeed, client: TestClient[Any, Any], bridge: Bridge, clock: OffsetClock, pi: str
) -> None:
    feed.emit("payment_intent.succeeded", payment_intent(feed, pi, "succeeded", 4200))
    status, body = await post_stripe(client, feed.events[-1], ts=int(clock()))
    assert status == 200 and body["events"] == []  # held
    clock.offset += 60  # past the window
    bridge.correlation.wake()
    await _decided(bridge)


def _warnings(caplog: pytest.LogCaptureFixture) -> int:
    return sum(WARNING in r.getMessage() for r in caplog.records)


async def test_match_warning_is_logged_once_an_hour_of_the_bridges_clock(
    tmp_path: Path, aiohttp_client: AiohttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.correlation")
    bridge, clock, client = await _bridge(tmp_path, aiohttp_client)
    feed = StripeFeed("basil")

    await _one_time_payment(feed, client, bridge, clock, "pi_1")
    await _one_time_payment(feed, client, bridge, clock, "pi_2")
    assert _warnings(caplog) == 1
    clock.offset += MATCH_WARNING_EVERY_S
    await _one_time_payment(feed, client, bridge, clock, "pi_3")

    assert _warnings(caplog) == 2
    message = next(r.getMessage() for r in caplog.records if WARNING in r.getMessage())
    assert "invoice_payment.paid" in message and "Invoices: Read" in message
    types = [e.type for e in (await bridge.store.list_events(limit=None)).items]
    assert types.count("payment.succeeded") == 3  # genuine one-time payments, all emitted
    metrics = await (await client.get("/metrics")).text()
    counted = 'paybridge_held_decisions_age_seconds_count{basis="no_match",outcome="emitted"} 3.0'
    assert counted in metrics
    # each waited its window (30 s) and the test's 60 s jump: the 120 s bucket holds all three
    waited = 'paybridge_held_decisions_age_seconds_bucket{basis="no_match",le="120.0",outcome='
    assert f'{waited}"emitted"}} 3.0' in metrics


async def test_held_decisions_waiting_and_their_age_are_gauges(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    bridge, clock, client = await _bridge(tmp_path, aiohttp_client)
    feed = StripeFeed("basil")
    feed.emit("payment_intent.succeeded", payment_intent(feed, "pi_1", "succeeded", 4200))
    assert (await post_stripe(client, feed.events[-1], ts=int(clock())))[0] == 200
    clock.offset += 20  # held for 20 s, inside the 30 s window

    await bridge.correlation.tick()

    metrics = await (await client.get("/metrics")).text()
    assert "paybridge_held_decisions_waiting 1.0" in metrics
    age = next(line for line in metrics.splitlines()
               if line.startswith("paybridge_held_decisions_oldest_age_seconds "))  # fmt: skip
    assert 20.0 <= float(age.split()[1]) < 30.0


async def test_no_match_warning_once_invoice_payment_events_arrive(
    tmp_path: Path, aiohttp_client: AiohttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.correlation")
    bridge, clock, client = await _bridge(tmp_path, aiohttp_client)
    feed = StripeFeed("basil")
    feed.emit("invoice_payment.paid", invoice_payment("in_1", "pi_sub", 1000))
    assert (await post_stripe(client, feed.events[-1]))[0] == 200

    await _one_time_payment(feed, client, bridge, clock, "pi_1")

    assert _warnings(caplog) == 0


async def test_invoice_payments_older_than_any_possible_match_are_forgotten(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    bridge, clock, client = await _bridge(tmp_path, aiohttp_client)
    feed = StripeFeed("basil")
    lines = [(price("price_Once", 4200, product="prod_Once"), 1)]
    paid = invoice(feed, "in_1", sub_id=None, billing_reason="manual", status="paid", lines=lines)
    feed.emit("invoice.paid", paid)
    assert (await post_stripe(client, feed.events[-1], ts=int(clock())))[0] == 200
    clock.offset += 61  # two 30 s windows: no PI held now or later can match it

    await bridge.correlation.tick()

    assert await bridge.store.forget_invoice_payments(seen_before=clock()) == 0
