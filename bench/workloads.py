"""The five workloads of issue #7. Each returns a JSON-able dict with every run's figures and
their medians; nothing here asserts on speed."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from pathlib import Path
from typing import Any

import orjson

from bench.harness import (
    Ctx,
    Server,
    baseline,
    get_json,
    paybridge,
    post_json,
    receivers,
    run_loadgen,
    run_pinned,
)
from bench.payload import canonical_events_per_request
from bench.prefill import prefill_sqlite
from bench.procs import CPUS, python_cmd, rss_mb
from bench.stats import median, percentile

__all__ = ["e2e_latency", "fanout", "ingest", "postgres_database", "prefill", "store_scale"]

N_ENDPOINTS = 10
PER_ENDPOINT = 16  # paybridge's default delivery.max_in_flight_per_endpoint


def _summary(runs: list[dict[str, Any]], *keys: str) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": runs}
    for key in keys:
        out[key] = median([r.get(key) for r in runs])
    return out


def _ingest_run(ctx: Ctx, server: Server, tag: str, first: bool) -> dict[str, Any]:
    res = run_loadgen(
        f"{server.base}/webhooks/stripe",
        server.proc.pid,
        count=ctx.ingest_count,
        warmup=500 if first else 0,
        tag=tag,
    )
    # Accepted events per second of server CPU: robust to other load on the machine.
    res["rate_per_server_cpu"] = (
        round(res["rate"] / res["server_cpu"]) if res["server_cpu"] else None
    )
    return res


def _ingest_summary(runs: list[dict[str, Any]], server: Server) -> dict[str, Any]:
    out = _summary(
        runs,
        "rate",
        "p50_ms",
        "p99_ms",
        "server_cpu",
        "loadgen_cpu",
        "rate_per_server_cpu",
        "server_core_speed",
    )
    out.update(rss_mb(server.proc.pid))
    return out


def ingest(
    ctx: Ctx,
    store_url: str | None = None,
    with_baselines: bool = True,
    prefilled: Path | None = None,
) -> dict[str, Any]:
    """Workload 1 (and 5a): accepted events/s and latency, paybridge vs baselines A and B;
    with ``prefilled`` (a SQLite file from :func:`bench.prefill.prefill_sqlite`) also
    paybridge on that store (workload 4).

    Every server runs at once (idle ones cost nothing) and the runs are interleaved, round
    after round (A, B, paybridge, prefilled, A, B, ...): this VM's speed drifts by tens of
    percent within minutes, and a drift then hits every figure of a ratio alike instead of
    one block of runs."""
    name = "sqlite" if store_url is None else "postgres"
    url = store_url or f"sqlite:///{ctx.dir('ingest_sqlite') / 'paybridge.db'}"
    out: dict[str, Any] = {"requests_per_run": ctx.ingest_count, "concurrency": 64}
    with contextlib.ExitStack() as stack:
        servers: dict[str, tuple[Server, str]] = {}
        if with_baselines:
            for kind in ("a", "b"):
                servers[f"baseline_{kind}"] = (stack.enter_context(baseline(ctx, kind)), f"b{kind}")
        servers["paybridge"] = (
            stack.enter_context(paybridge(ctx, f"ingest_{name}", url)),
            f"p{name[0]}",
        )
        if prefilled is not None:
            store = f"sqlite:///{prefilled}"
            servers["prefilled"] = (stack.enter_context(paybridge(ctx, "scale", store)), "s")
        runs: dict[str, list[dict[str, Any]]] = {key: [] for key in servers}
        for i in range(ctx.runs):
            for key, (server, tag) in servers.items():
                runs[key].append(_ingest_run(ctx, server, f"{tag}{i}", first=i == 0))
        for key, (server, _) in servers.items():
            out[key] = _ingest_summary(runs[key], server)
    rate = out["paybridge"]["rate"]
    for kind in ("a", "b"):
        base = out.get(f"baseline_{kind}", {}).get("rate")
        if base and rate:
            out[f"paybridge_over_{kind}"] = round(rate / base, 3)
    return out


def _wait_deliveries(base: str, expected: int, idle_s: float = 5.0) -> dict[str, Any]:
    """Poll the receivers until ``expected`` good POSTs or ``idle_s`` without progress."""
    last_good, last_change = -1, time.monotonic()
    while True:
        stats: dict[str, Any] = get_json(f"{base}/stats")
        if stats["good"] >= expected:
            return stats
        if stats["good"] != last_good:
            last_good, last_change = stats["good"], time.monotonic()
        elif time.monotonic() - last_change > idle_s:
            return stats
        time.sleep(0.1)


def fanout(ctx: Ctx, store_url: str | None = None, with_baseline: bool = True) -> dict[str, Any]:
    """Workload 2 (and 5b): signed deliveries/s to 10 local endpoints subscribed to ``*``,
    while the load generator ingests events; vs a raw aiohttp POST loop to the same receivers."""
    name = "sqlite" if store_url is None else "postgres"
    url = store_url or f"sqlite:///{ctx.dir('fanout_sqlite') / 'paybridge.db'}"
    per_request = canonical_events_per_request() * N_ENDPOINTS
    out: dict[str, Any] = {"endpoints": N_ENDPOINTS, "deliveries_per_request": per_request}
    # Interleaved, round after round (raw client, paybridge, ...): see ingest().
    with (
        receivers(ctx, N_ENDPOINTS) as ports,
        paybridge(ctx, f"fanout_{name}", url, receiver_ports=ports) as server,
    ):
        rbase = f"http://127.0.0.1:{ports[0]}"
        base_runs: list[dict[str, Any]] = []
        runs: list[dict[str, Any]] = []
        for i in range(ctx.runs):
            if with_baseline:
                post_json(f"{rbase}/reset")
                count = ctx.fanout_events * per_request
                args = [str(count), str(PER_ENDPOINT), *map(str, ports)]
                out_json = run_pinned(python_cmd("bench.poster", *args), CPUS[0], 300)
                base_runs.append(orjson.loads(out_json))
            post_json(f"{rbase}/reset")
            load = run_loadgen(
                f"{server.base}/webhooks/stripe",
                server.proc.pid,
                count=ctx.fanout_events,
                tag=f"f{name[0]}{i}",
            )
            stats = _wait_deliveries(rbase, load["ok"] * per_request)
            span = (stats["last"] or 0) - (stats["first"] or 0)
            runs.append(
                {
                    "ingested": load["ok"],
                    "ingest_rate": load["rate"],
                    "expected": load["ok"] * per_request,
                    "delivered": stats["good"],
                    "bad_signatures": stats["bad"],
                    "rate": round(stats["good"] / span, 1) if span > 0 else None,
                    "server_core_speed": load.get("server_core_speed"),
                }
            )
        if with_baseline:
            out["baseline_raw_client"] = _summary(base_runs, "rate")
        out["paybridge"] = _summary(runs, "rate", "ingest_rate")
        out["paybridge"].update(rss_mb(server.proc.pid))
    base_rate = out.get("baseline_raw_client", {}).get("rate")
    if base_rate and out["paybridge"]["rate"]:
        out["paybridge_over_raw_client"] = round(out["paybridge"]["rate"] / base_rate, 3)
    return out


def e2e_latency(ctx: Ctx, rate: float = 500.0) -> dict[str, Any]:
    """Workload 3: at a fixed ``rate``, provider ack → receiver got the signed POST, and
    ack → bus handler started (the app of :mod:`bench.busapp`); p50/p99 in ms."""
    url = f"sqlite:///{ctx.dir('e2e') / 'paybridge.db'}"
    runs = []
    with (
        receivers(ctx, 1, record=True) as ports,
        paybridge(ctx, "e2e", url, receiver_ports=ports, bus_app=True) as server,
    ):
        rbase = f"http://127.0.0.1:{ports[0]}"
        for i in range(ctx.runs):
            post_json(f"{rbase}/reset")
            load = run_loadgen(
                f"{server.base}/webhooks/stripe",
                server.proc.pid,
                count=ctx.e2e_events,
                rate=rate,
                tag=f"e{i}",
            )
            acks: dict[str, float] = load.pop("acks")
            _wait_deliveries(rbase, len(acks) * canonical_events_per_request())
            got = get_json(f"{rbase}/stats")["times"]
            bus = get_json(f"{server.base}/bench/bus-times")
            hook_ms = [(got[e] - t) * 1000 for e, t in acks.items() if e in got]
            bus_ms = [(bus[e] - t) * 1000 for e, t in acks.items() if e in bus]
            runs.append({
                "sent": load["sent"], "acked": len(acks), "achieved_rate": load["rate"],
                "ack_p50_ms": load["p50_ms"], "ack_p99_ms": load["p99_ms"],
                "webhook_seen": len(hook_ms), "webhook_p50_ms": percentile(hook_ms, 50),
                "webhook_p99_ms": percentile(hook_ms, 99),
                "bus_seen": len(bus_ms), "bus_p50_ms": percentile(bus_ms, 50),
                "bus_p99_ms": percentile(bus_ms, 99),
                "server_cpu": load.get("server_cpu"),
                "server_core_speed": load.get("server_core_speed"),
            })  # fmt: skip
    return {"rate": rate, **_summary(
        runs, "ack_p50_ms", "ack_p99_ms", "webhook_p50_ms", "webhook_p99_ms",
        "bus_p50_ms", "bus_p99_ms", "server_core_speed",
    )}  # fmt: skip


def prefill(ctx: Ctx) -> tuple[Path, float, float]:
    """Workload 4's store: ``ctx.scale_n`` events written into a fresh SQLite file; returns
    (its path, seconds taken, size in MB)."""
    d = ctx.dir("scale")
    db = d / "paybridge.db"
    seconds = prefill_sqlite(db, ctx.scale_n)
    size_mb = sum(p.stat().st_size for p in d.glob("paybridge.db*")) / 2**20
    return db, seconds, size_mb


def store_scale(
    ctx: Ctx, ingest_out: dict[str, Any], seconds: float, size_mb: float
) -> dict[str, Any]:
    """Workload 4: ingest rate and RSS with ``ctx.scale_n`` prefilled events vs the empty store,
    both measured by :func:`ingest` in the same interleaved rounds."""
    empty, full = ingest_out["paybridge"], ingest_out["prefilled"]
    out: dict[str, Any] = {
        "prefilled_events": ctx.scale_n,
        "prefill": "PREFILL: rows written directly with sqlite3 in paybridge's schema",
        "prefill_s": round(seconds, 1),
        "db_mb_before": round(size_mb, 1),
        "empty": {k: empty.get(k) for k in ("rate", "p99_ms", "rss_mb", "peak_rss_mb")},
        "prefilled": full,
    }
    if empty.get("rate") and full["rate"]:
        out["rate_ratio"] = round(full["rate"] / empty["rate"], 3)
    if empty.get("rate_per_server_cpu") and full.get("rate_per_server_cpu"):
        out["rate_per_cpu_ratio"] = round(
            full["rate_per_server_cpu"] / empty["rate_per_server_cpu"], 3
        )
    return out


async def _pg(admin_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def postgres_database(admin_url: str) -> tuple[str, str]:
    """Create a fresh database on the server of ``admin_url``; returns (its url, its name).

    Raises:
        OSError / asyncpg errors: the server is unreachable or refuses.
    """
    from urllib.parse import urlsplit, urlunsplit

    name = f"paybridge_bench_{secrets.token_hex(4)}"
    asyncio.run(_pg(admin_url, f'CREATE DATABASE "{name}"'))
    return urlunsplit(urlsplit(admin_url)._replace(path="/" + name)), name


def drop_postgres_database(admin_url: str, name: str) -> None:
    asyncio.run(_pg(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
