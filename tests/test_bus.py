"""The in-process bus: registration rules and durable, at-least-once handlers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge import Bridge, Event, EventBus, UnknownEventTypeError
from bridge.catalog import matches_any
from tests.conftest import BridgeFactory, make_config, post_stripe, stripe_event
from tests.receivers import wait_until

ROOT = Path(__file__).resolve().parents[1]
SUB = {"id": "sub_bus1", "object": "subscription", "customer": "cus_1", "status": "active"}


def test_bus_unknown_type_raises_at_registration() -> None:
    bus = EventBus()

    async def h(event: Event) -> None: ...

    with pytest.raises(UnknownEventTypeError):
        bus.on("customer.subscription.startd", h)
    with pytest.raises(UnknownEventTypeError):
        bus.on("nothing.*", h)
    assert bus.handlers == []


def test_bus_decorator_and_call_forms_once_off_subscribe() -> None:
    bus = EventBus()

    @bus.on("customer.subscription.*")
    async def fam(event: Event) -> None: ...

    async def direct(event: Event) -> None: ...

    async def audit(event: Event) -> None: ...

    assert bus.on("invoice.paid", direct) is direct
    bus.subscribe(audit)
    patterns = [spec.patterns for spec in bus.handlers]
    assert matches_any(patterns[0], "customer.subscription.renewed")
    assert not matches_any(patterns[0], "invoice.paid")
    assert matches_any(patterns[2], "refund.succeeded")  # subscribe: everything
    assert bus.off("invoice.paid", direct) is True
    assert bus.off("invoice.paid", direct) is False
    assert len(bus.handlers) == 2


def test_bus_same_name_for_two_functions_is_an_error() -> None:
    bus = EventBus()

    async def a(event: Event) -> None: ...

    async def b(event: Event) -> None: ...

    bus.on("invoice.paid", a, name="x")
    bus.on("payment.succeeded", a, name="x")  # same function: patterns merge
    assert bus.spec("x") is not None and len(bus.spec("x").patterns) == 2  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="already used"):
        bus.on("invoice.paid", b, name="x")


async def test_bus_handler_that_raises_once_is_called_again(make_bridge: BridgeFactory) -> None:
    calls: list[str] = []

    def register(bridge: Bridge) -> None:
        @bridge.bus.on("customer.subscription.started")
        async def flaky(event: Event) -> None:
            calls.append(event.id)
            if len(calls) == 1:
                raise RuntimeError("database busy")

    bridge, client = await make_bridge(register=register)
    await post_stripe(client, stripe_event("customer.subscription.created", SUB))
    await wait_until(lambda: len(calls) >= 2, "the handler ran fewer than two times")
    assert calls[0] == calls[1]
    page = await bridge.store.list_attempts(event_id=calls[0])
    assert [a.status for a in reversed(page.items)] == ["failed", "succeeded"]
    assert "database busy" in (page.items[-1].error or "")


async def test_bus_failing_handler_never_blocks_another(make_bridge: BridgeFactory) -> None:
    good: list[str] = []

    def register(bridge: Bridge) -> None:
        @bridge.bus.on("customer.subscription.created")
        async def broken(event: Event) -> None:
            raise RuntimeError("always")

        @bridge.bus.on("customer.subscription.created")
        def sync_good(event: Event) -> None:  # plain functions work too
            good.append(event.id)

    _, client = await make_bridge(register=register)
    for i in range(3):
        await post_stripe(
            client, stripe_event("customer.subscription.created", {**SUB, "id": f"sub_{i}"})
        )
    await wait_until(lambda: len(good) == 3, "the healthy handler did not get all three")


async def test_bus_timed_out_handler_is_retried(make_bridge: BridgeFactory) -> None:
    calls: list[float] = []

    def register(bridge: Bridge) -> None:
        @bridge.bus.on("customer.subscription.started")
        async def slow_first(event: Event) -> None:
            calls.append(time.monotonic())
            if len(calls) == 1:
                await asyncio.sleep(30)

    bridge, client = await make_bridge("bus: {{handler_timeout_s: 0.2}}", register=register)
    await post_stripe(client, stripe_event("customer.subscription.created", SUB))
    await wait_until(lambda: len(calls) >= 2, "the handler was not retried")
    attempts = await bridge.store.list_attempts()
    assert any(a.error == "timeout" for a in attempts.items)


async def test_bus_handler_slot_is_free_before_its_outcome_is_committed(
    make_bridge: BridgeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one slot per subscriber, the next event's handler run does not wait for the
    previous run's attempt record to commit (commits can take an fsync or more)."""
    calls: list[str] = []

    def register(bridge: Bridge) -> None:
        @bridge.bus.on("customer.subscription.created")
        async def quick(event: Event) -> None:
            calls.append(event.source_event_id)

    bridge, client = await make_bridge(
        "delivery: {{max_in_flight_per_endpoint: 1}}", register=register
    )
    gate = asyncio.Event()
    real_record = bridge.store.record_attempt

    async def slow_record(*args: Any, **kwargs: Any) -> bool:
        await gate.wait()
        return await real_record(*args, **kwargs)

    monkeypatch.setattr(bridge.store, "record_attempt", slow_record)
    for i in range(3):
        await post_stripe(
            client, stripe_event("customer.subscription.created", {**SUB, "id": f"sub_slot{i}"})
        )
    await wait_until(
        lambda: len(calls) == 3, "the handler did not run for all three"
    )  # all ran while every record was still held
    gate.set()

    async def recorded() -> bool:
        page = await bridge.store.list_attempts(limit=10)
        return sum(a.status == "succeeded" for a in page.items) == 3

    await wait_until(recorded, "the three outcomes were not recorded")


async def test_bus_once_handler_runs_for_one_event(make_bridge: BridgeFactory) -> None:
    seen: list[str] = []

    def register(bridge: Bridge) -> None:
        async def first(event: Event) -> None:
            seen.append(event.id)

        bridge.bus.once("customer.subscription.created", first)

    bridge, client = await make_bridge(register=register)
    handler_id = bridge.bus.handlers[0].subscriber_id
    await post_stripe(
        client, stripe_event("customer.subscription.created", {**SUB, "id": "sub_o0"})
    )
    await wait_until(lambda: len(seen) == 1, "the handler never ran")
    assert bridge.bus.handlers == []

    async def unsubscribed() -> bool:
        return await bridge.store.get_subscriber(handler_id) is None

    await wait_until(unsubscribed, "the once handler is still subscribed")
    for i in (1, 2):
        await post_stripe(
            client, stripe_event("customer.subscription.created", {**SUB, "id": f"sub_o{i}"})
        )
    # the later events were stored with no delivery to the handler, so nothing can run it again
    assert len((await bridge.store.list_events(limit=None)).items) >= 3
    deliveries = (await bridge.store.list_deliveries(subscriber_id=handler_id)).items
    assert [d.event_id for d in deliveries] == seen


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_bus_handler_killed_mid_run_is_called_after_restart(tmp_path: Path) -> None:
    """A process acks an event, starts the handler and is SIGKILLed; a new process with the
    same handler name runs it once the dead process's lease expires."""
    cfg = make_config(
        tmp_path, "delivery: {{timeout_s: 1}}\nbus: {{handler_timeout_s: 1}}\nstore: {{lease_s: 1}}"
    )
    cfg_path = tmp_path / "config.yaml"
    data = cfg.model_dump(mode="json")
    data["sources"]["stripe"]["signing_secrets"] = [
        s.get_secret_value()
        for s in cfg.sources.stripe.signing_secrets  # type: ignore[union-attr]
    ]
    data["admin"]["api_keys"] = []
    cfg_path.write_text(yaml.safe_dump(data))
    port, marker = _free_port(), tmp_path / "started"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.procs.bus_app", str(cfg_path), str(port), str(marker)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        import aiohttp
        import orjson

        from tests.conftest import stripe_headers

        body = orjson.dumps(stripe_event("customer.subscription.created", SUB))
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                try:
                    async with session.post(
                        f"http://127.0.0.1:{port}/webhooks/stripe",
                        data=body,
                        headers=stripe_headers(body),
                    ) as resp:
                        assert resp.status == 200
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
        await wait_until(marker.exists, "the handler never wrote its marker")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    event_id = marker.read_text()
    calls: list[str] = []
    bridge = Bridge(cfg)

    @bridge.bus.on("customer.subscription.started", name="grant")
    async def grant(event: Event) -> None:
        calls.append(event.id)

    async with bridge:
        await wait_until(lambda: bool(calls), "the handler never ran", timeout_s=20)
    assert calls == [event_id]
