"""Workload 6: ack → ``payment.succeeded`` for basil one-time PaymentIntents with an API key.

paybridge (the timestamping bus app, :mod:`bench.busapp`) runs with ``sources.stripe.api_key``
pointing at a local Stripe-compatible API (:mod:`bench.stripe_api`, on the load core). Each
request is a fresh basil ``payment_intent.succeeded`` that names no invoice: paybridge holds it,
asks ``GET /v1/invoice_payments`` right after the ack, learns it pays none, and emits it. The
figure is the time from the provider's ack to the bus handler starting, p50/p99 in ms (the
correlation window, 120 s, never decides here).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson

from bench.harness import Ctx, get_json, paybridge
from bench.payload import BENCH_SECRET
from bench.procs import CPUS, Proc, free_port, python_cmd
from bench.stats import median, percentile
from bridge.signing import sign_timestamped_hmac

__all__ = ["lookup_latency"]

_BASIL = "2025-03-31.basil"


def _payment_intent(tag: str, i: int) -> tuple[str, bytes]:
    pi, event_id = f"pi_bench{tag}{i:06d}", f"evt_bench{tag}{i:06d}"
    obj = {"id": pi, "object": "payment_intent", "amount": 4200, "amount_received": 4200,
           "currency": "usd", "customer": f"cus_bench{i % 50:03d}", "status": "succeeded",
           "latest_charge": f"ch_bench{tag}{i:06d}", "livemode": False}  # fmt: skip
    event = {"id": event_id, "object": "event", "api_version": _BASIL, "created": int(time.time()),
             "data": {"object": obj}, "livemode": False, "pending_webhooks": 1,
             "request": {"id": None, "idempotency_key": None},
             "type": "payment_intent.succeeded"}  # fmt: skip
    return event_id, orjson.dumps(event)


async def _post_all(url: str, count: int, rate: float, tag: str) -> dict[str, float]:
    """Open loop at ``rate``/s: the ``time.monotonic()`` of each ack, by provider event id."""
    acks: dict[str, float] = {}
    async with aiohttp.ClientSession() as session:

        async def one(i: int) -> None:
            event_id, body = _payment_intent(tag, i)
            header = sign_timestamped_hmac(body, [BENCH_SECRET], int(time.time()))
            headers = {"Stripe-Signature": header, "Content-Type": "application/json"}
            async with session.post(url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status == 200:
                    acks[event_id] = time.monotonic()

        t0 = time.monotonic()
        tasks = []
        for i in range(count):
            await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return acks


def _wait_bus(base: str, acks: dict[str, float], timeout_s: float = 60.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout_s
    while True:
        seen: dict[str, float] = get_json(f"{base}/bench/bus-times")
        if all(e in seen for e in acks) or time.monotonic() > deadline:
            return seen
        time.sleep(0.1)


def lookup_latency(ctx: Ctx, count: int = 200, rate: float = 20.0) -> dict[str, Any]:
    """Workload 6 (module docstring): ``count`` PaymentIntents per run at ``rate``/s."""
    d = ctx.dir("lookup")
    port = free_port()
    api = Proc(python_cmd("bench.stripe_api", str(port)), log=d / "stripe_api.log", cpu=CPUS[1])
    runs = []
    try:
        api.wait_port(port)
        stripe = {"api_key": "rk_test_bench_lookup", "api_base": f"http://127.0.0.1:{port}"}
        url = f"sqlite:///{d / 'paybridge.db'}"
        with paybridge(ctx, "lookup", url, bus_app=True, stripe=stripe) as server:
            for i in range(ctx.runs):
                tag = f"{i}{time.time_ns() % 10**6:06d}"
                acks = asyncio.run(_post_all(f"{server.base}/webhooks/stripe", count, rate, tag))
                seen = _wait_bus(server.base, acks)
                ms = [(seen[e] - t) * 1000 for e, t in acks.items() if e in seen]
                runs.append(
                    {
                        "sent": count,
                        "acked": len(acks),
                        "emitted": len(ms),
                        "p50_ms": percentile(ms, 50),
                        "p99_ms": percentile(ms, 99),
                    }
                )
    finally:
        api.stop()
    return {
        "rate": rate,
        "count": count,
        "runs": runs,
        "p50_ms": median([r["p50_ms"] for r in runs]),
        "p99_ms": median([r["p99_ms"] for r in runs]),
    }
