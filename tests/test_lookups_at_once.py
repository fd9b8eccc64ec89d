"""With an API key, a held basil PaymentIntent is looked up as soon as it is stored (a local
Stripe-compatible server answers ``GET /v1/invoice_payments``): emitted within the poll, not
after the window; dropped when it pays an invoice; exactly once whatever the invoice events do
before, during or after the look-up, when the look-up fails, is slow, or the service restarts
between hold and look-up. The bridge's clock never reaches the window's end unless a test
moves it there."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pytest_aiohttp import AiohttpClient

from bridge.service import Bridge
from tests.adapters.scenarios.stripe_factories import (
    StripeFeed,
    invoice,
    invoice_payment,
    payment_intent,
    price,
)
from tests.adapters.stripe_scenarios import SCENARIOS, STREAM_IDS, STREAMS, Stream
from tests.conftest import make_config, post_stripe
from tests.receivers import OffsetClock, Receiver, nothing_held, wait_until

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]
KEY = "rk_test_local_lookup_at_once"
Facts = set[tuple[str, str]]


class FakeStripe:
    """``GET /v1/invoice_payments``: ``paying`` maps a PaymentIntent to the invoice it pays.
    ``failures`` answers 500 that many times first; ``gate`` (when set) holds every answer
    until it is opened."""

    def __init__(self, paying: dict[str, str]) -> None:
        self.paying = paying
        self.calls: list[str] = []
        self.failures = 0
        self.gate: asyncio.Event | None = None

    async def invoice_payments(self, request: web.Request) -> web.Response:
        assert request.headers.get("Authorization") == f"Bearer {KEY}"
        pi = request.query.get("payment[payment_intent]", "")
        self.calls.append(pi)
        if self.failures:
            self.failures -= 1
            return web.json_response({"error": {"type": "api_error"}}, status=500)
        if self.gate is not None:
            await self.gate.wait()
        data = []
        if pi in self.paying:
            data = [{"id": f"inpay_{pi}", "object": "invoice_payment",
                     "invoice": self.paying[pi],
                     "payment": {"type": "payment_intent", "payment_intent": pi}}]  # fmt: skip
        body = {"object": "list", "data": data, "has_more": False}
        return web.json_response({**body, "url": "/v1/invoice_payments"})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/invoice_payments", self.invoice_payments)
        return app


async def _bridge(
    tmp_path: Path,
    server: TestServer,
    clock: OffsetClock,
    window_s: float = 120.0,
    endpoint_url: str | None = None,
) -> Bridge:
    base = str(server.make_url("")).rstrip("/")
    yaml = "sources: {{stripe: {{correlation_window_s: {w}, api_key: {k}, api_base: '{b}'}}}}"
    if endpoint_url:
        yaml += (
            "\nendpoints:\n  - id: we_shop\n    url: {u}\n"
            "    enabled_events: [payment.succeeded]\n"
            "    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"
        )
    config = make_config(tmp_path, yaml, w=window_s, k=KEY, b=base, u=endpoint_url)
    return Bridge(config, clock=clock)


async def _facts(bridge: Bridge) -> Facts:
    return {(e.type, e.dedupe_key) for e in (await bridge.store.list_events(limit=None)).items}


async def _post(client: TestClient[Any, Any], event: dict[str, Any], clock: OffsetClock) -> None:
    status, _ = await post_stripe(client, event, ts=int(clock()))
    assert status == 200


def _one_time(feed: StripeFeed, pi: str, amount: int = 4200) -> dict[str, Any]:
    feed.emit("payment_intent.succeeded", payment_intent(feed, pi, "succeeded", amount))
    return feed.events[-1]


def _invoice_paid(feed: StripeFeed, inv: str, amount: int = 4200) -> dict[str, Any]:
    lines = [(price("price_Once", amount, product="prod_Once"), 1)]
    paid = invoice(feed, inv, sub_id=None, billing_reason="manual", status="paid", lines=lines)
    feed.emit("invoice.paid", paid)
    return feed.events[-1]


ONE_TIME: Facts = {("payment_intent.succeeded", "pi:pi_1:succeeded"), ("payment.succeeded",
                   "payment:pi_1")}  # fmt: skip


async def test_one_time_payment_intent_is_emitted_at_once_and_one_paying_an_invoice_dropped(
    tmp_path: Path, aiohttp_server: ServerFactory, aiohttp_client: AiohttpClient
) -> None:
    stripe = FakeStripe({"pi_inv": "in_1"})
    clock = OffsetClock()
    shop = await Receiver().start()
    server = await aiohttp_server(stripe.app())
    bridge = await _bridge(tmp_path, server, clock, endpoint_url=shop.url())
    client = await aiohttp_client(bridge.web_app())
    got: list[str] = []

    @bridge.bus.on("payment.succeeded")
    async def grant(event: Any) -> None:
        got.append(event.data["object"]["payment_intent"])

    feed = StripeFeed("basil")
    await _post(client, _one_time(feed, "pi_1"), clock)
    await _post(client, _one_time(feed, "pi_inv"), clock)

    await wait_until(
        lambda: nothing_held(bridge.store), "held PaymentIntents not looked up at once"
    )
    assert await _facts(bridge) == ONE_TIME  # the bridge's clock never passed the window
    await wait_until(lambda: bool(got), "the bus handler never ran")
    assert got == ["pi_1"] and sorted(stripe.calls) == ["pi_1", "pi_inv"]
    (posted,) = await shop.wait_count(1)  # the endpoint got it too, once
    await shop.close()
    summary = orjson.loads(posted.body)["data"]["object"]
    assert (summary["payment_intent"], summary["kind"]) == ("pi_1", "one_time")


async def test_failing_lookup_is_retried_with_backoff_inside_the_window(
    tmp_path: Path, aiohttp_server: ServerFactory, aiohttp_client: AiohttpClient
) -> None:
    stripe = FakeStripe({})
    stripe.failures = 2
    clock = OffsetClock()
    bridge = await _bridge(tmp_path, await aiohttp_server(stripe.app()), clock)
    client = await aiohttp_client(bridge.web_app())

    await _post(client, _one_time(StripeFeed("basil"), "pi_1"), clock)

    async def retried() -> bool:
        clock.offset += 0.5  # time passes on the bridge's clock only
        bridge.correlation.wake()
        return await nothing_held(bridge.store)

    await wait_until(retried, "look-up never retried")
    assert stripe.calls == ["pi_1"] * 3 and clock.offset < 120
    assert await _facts(bridge) == ONE_TIME


async def test_lookup_failing_all_window_long_leaves_the_decision_to_the_match(
    tmp_path: Path, aiohttp_server: ServerFactory, aiohttp_client: AiohttpClient
) -> None:
    stripe = FakeStripe({"pi_inv": "in_1"})
    stripe.failures = 10_000
    clock = OffsetClock()
    bridge = await _bridge(tmp_path, await aiohttp_server(stripe.app()), clock, window_s=30)
    client = await aiohttp_client(bridge.web_app())
    feed = StripeFeed("basil")
    paying, invoiced = _one_time(feed, "pi_inv"), _invoice_paid(feed, "in_1")
    for event in (paying, invoiced, _one_time(feed, "pi_1", amount=5000)):
        await _post(client, event, clock)
    # pi_inv's invoice (same customer, amount, currency) has no invoice_payment.paid; pi_1 is
    # the same customer's one-time payment of another amount

    clock.offset += 31
    bridge.correlation.wake()

    await wait_until(
        lambda: nothing_held(bridge.store), "held PaymentIntents not decided at the window"
    )
    facts = await _facts(bridge)
    assert facts >= {("payment.succeeded", "payment:in_1"), *ONE_TIME}
    assert not any("pi_inv" in key for _, key in facts)


@pytest.mark.parametrize("linked_by", ["invoice_payment.paid", "lookup"])
async def test_invoice_events_during_a_slow_lookup_give_one_fact(
    tmp_path: Path,
    aiohttp_server: ServerFactory,
    aiohttp_client: AiohttpClient,
    linked_by: str,
) -> None:
    stripe = FakeStripe({"pi_inv": "in_1"} if linked_by == "lookup" else {})
    stripe.gate = asyncio.Event()
    clock = OffsetClock()
    bridge = await _bridge(tmp_path, await aiohttp_server(stripe.app()), clock)
    client = await aiohttp_client(bridge.web_app())
    feed = StripeFeed("basil")
    await _post(client, _one_time(feed, "pi_inv"), clock)
    await wait_until(lambda: bool(stripe.calls), "no look-up started")

    await _post(client, _invoice_paid(feed, "in_1"), clock)  # during the look-up
    feed.emit("invoice_payment.paid", invoice_payment("in_1", "pi_inv", 4200))
    if linked_by == "invoice_payment.paid":
        await _post(client, feed.events[-1], clock)
    stripe.gate.set()

    await wait_until(lambda: nothing_held(bridge.store), "held PaymentIntent never decided")
    payments = [k for t, k in await _facts(bridge) if t.startswith("payment")]
    assert payments == ["payment:in_1"]
    await _post(client, feed.events[-1], clock)  # invoice_payment.paid after the look-up
    assert [k for t, k in await _facts(bridge) if t.startswith("payment")] == ["payment:in_1"]


async def test_restart_between_hold_and_lookup_only_delays_the_decision(
    tmp_path: Path, aiohttp_server: ServerFactory, aiohttp_client: AiohttpClient
) -> None:
    stripe = FakeStripe({})
    stripe.gate = asyncio.Event()  # the first instance's look-up never returns
    server = await aiohttp_server(stripe.app())
    clock = OffsetClock()
    first = await _bridge(tmp_path, server, clock)
    client = await aiohttp_client(first.web_app())
    await _post(client, _one_time(StripeFeed("basil"), "pi_1"), clock)
    await wait_until(lambda: bool(stripe.calls), "no look-up started")
    await client.close()  # stops the first instance with its hold claimed

    clock.offset += first.lease_s + 1  # its lease expires; the window (120 s) has not ended
    stripe.gate.set()
    second = await _bridge(tmp_path, server, clock)
    await aiohttp_client(second.web_app())

    await wait_until(
        lambda: nothing_held(second.store), "the second instance never decided the hold"
    )
    assert await _facts(second) == ONE_TIME and len(stripe.calls) == 2


def _paying(name: str) -> dict[str, str]:
    """The truth Stripe knows for a scenario: which PaymentIntent pays which invoice (the
    pre-basil PaymentIntents name it)."""
    out = {}
    for e in SCENARIOS[name].events("pre_basil"):
        obj = e["data"]["object"]
        if obj.get("object") == "payment_intent" and obj.get("invoice"):
            out[obj["id"]] = obj["invoice"]
    return out


@pytest.mark.parametrize("stream", STREAMS, ids=STREAM_IDS)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_scenario_with_lookups_gives_exact_facts_without_waiting_for_the_window(
    tmp_path: Path,
    aiohttp_server: ServerFactory,
    aiohttp_client: AiohttpClient,
    name: str,
    stream: Stream,
) -> None:
    scenario = SCENARIOS[name]
    events = scenario.events(*stream)
    rng = random.Random(f"lookups-{name}-{stream}")
    sent = events + rng.sample(events, k=min(3, len(events)))
    rng.shuffle(sent)
    stripe = FakeStripe(_paying(name))
    clock = OffsetClock()
    bridge = await _bridge(tmp_path, await aiohttp_server(stripe.app()), clock)
    client = await aiohttp_client(bridge.web_app())

    for event in sent:
        await _post(client, event, clock)

    await wait_until(
        lambda: nothing_held(bridge.store), "held PaymentIntents not decided by look-ups"
    )
    stored = await bridge.store.list_events(limit=None)
    assert {(e.type, e.dedupe_key) for e in stored.items} == scenario.expected(*stream)
    assert len(stored.items) == len(scenario.expected(*stream))
