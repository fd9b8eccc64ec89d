"""``python -m bench`` (``make bench``): run the workloads, print the table, write
``bench/results.json``.

Environment: ``BENCH_FULL=1`` for the long runs (1,000,000 prefilled events, more requests);
``BENCH_RUNS`` (default 3); ``BENCH_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/postgres``; ``none`` skips PostgreSQL);
``BENCH_ONLY`` (comma-separated subset of ingest,fanout,e2e,lookup,scale,console,postgres,
storage; console times the console's events page on the prefilled store of scale);
``BENCH_OUT`` (where to write the JSON; default ``bench/results.json``).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench import workloads as w
from bench.console import console_pages
from bench.harness import Ctx
from bench.lookups import lookup_latency
from bench.procs import pinning_note
from bench.report import machine, render_table, targets
from bench.storage import storage

__all__ = ["main", "make_ctx", "run_all"]

_ALL = ("ingest", "fanout", "e2e", "lookup", "scale", "console", "postgres", "storage")
_DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def make_ctx(tmp: Path, env: dict[str, str]) -> Ctx:
    """Quick or full settings from the environment."""
    full = env.get("BENCH_FULL", "") not in ("", "0")
    pg = env.get("BENCH_POSTGRES_URL", _DEFAULT_PG)
    ctx = Ctx(tmp=tmp, full=full, runs=int(env.get("BENCH_RUNS", "3")))
    ctx.postgres_url = None if pg.lower() in ("", "none") else pg
    if full:
        ctx.ingest_count, ctx.fanout_events, ctx.e2e_events = 50_000, 2_500, 10_000
        ctx.scale_n = 1_000_000
    ctx.scale_n = int(env.get("BENCH_SCALE_N", ctx.scale_n))
    return ctx


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _postgres(ctx: Ctx, results: dict[str, Any]) -> None:
    assert ctx.postgres_url is not None
    try:
        url, name = w.postgres_database(ctx.postgres_url)
    except Exception as exc:  # unreachable server: skip, and say so
        results["postgres_skipped"] = f"{type(exc).__name__}: {exc}"
        _log(f"PostgreSQL skipped: {results['postgres_skipped']}")
        return
    try:
        _log("ingest on PostgreSQL")
        results["ingest_postgres"] = w.ingest(ctx, url, with_baselines=False)
        for key in ("baseline_a", "baseline_b"):
            base = results.get("ingest_sqlite", {}).get(key, {}).get("rate")
            rate = results["ingest_postgres"]["paybridge"]["rate"]
            if base and rate:
                results["ingest_postgres"][f"paybridge_over_{key[-1]}"] = round(rate / base, 3)
        _log("fan-out on PostgreSQL")
        results["fanout_postgres"] = w.fanout(ctx, url, with_baseline=False)
        base = results.get("fanout_sqlite", {}).get("baseline_raw_client", {}).get("rate")
        rate = results["fanout_postgres"]["paybridge"]["rate"]
        if base and rate:
            results["fanout_postgres"]["paybridge_over_raw_client"] = round(rate / base, 3)
    finally:
        w.drop_postgres_database(ctx.postgres_url, name)


def run_all(ctx: Ctx, only: tuple[str, ...] = _ALL) -> dict[str, Any]:
    """Run the selected workloads; the results dict (see PERFORMANCE.md)."""
    results: dict[str, Any] = {
        "mode": "full" if ctx.full else "quick",
        "runs_per_figure": ctx.runs,
        "machine": machine(),
        "pinning": pinning_note(),
        "load_generator": "python asyncio HTTP/1.1 keep-alive client, 64 connections",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    prefilled = None
    if "scale" in only or "console" in only:
        _log(f"store scale: prefill {ctx.scale_n:,} events")
        prefilled = w.prefill(ctx)
    if "console" in only and prefilled is not None:
        _log("console pages on the prefilled store")
        results["console"] = console_pages(ctx, prefilled[0])
    if "scale" not in only:
        prefilled = None  # the console alone: no ingest rounds on the prefilled store
    if "ingest" in only or prefilled is not None:
        _log("ingest_sqlite" + (" (with the prefilled store)" if prefilled else ""))
        results["ingest_sqlite"] = w.ingest(
            ctx,
            with_baselines="ingest" in only,
            prefilled=prefilled[0] if prefilled else None,
        )
    if prefilled is not None:
        results["store_scale"] = w.store_scale(ctx, results["ingest_sqlite"], *prefilled[1:])
        del results["ingest_sqlite"]["prefilled"]  # reported under store_scale
    steps: list[tuple[str, str, Callable[[], Any]]] = [
        ("fanout", "fanout_sqlite", lambda: w.fanout(ctx)),
        ("e2e", "e2e", lambda: w.e2e_latency(ctx)),
        ("lookup", "lookup", lambda: lookup_latency(ctx)),
        ("storage", "storage", lambda: storage(ctx)),
    ]
    for key, name, fn in steps:
        if key in only:
            _log(name)
            results[name] = fn()
    if "postgres" in only and ctx.postgres_url:
        _postgres(ctx, results)
    results["targets"] = targets(results)
    results["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return results


def main() -> int:
    env = dict(os.environ)
    only = tuple(x for x in env.get("BENCH_ONLY", ",".join(_ALL)).split(",") if x)
    out = Path(env.get("BENCH_OUT", Path(__file__).with_name("results.json")))
    with tempfile.TemporaryDirectory(prefix="paybridge-bench-") as tmp:
        ctx = make_ctx(Path(tmp), env)
        mode = "full" if ctx.full else "quick"
        _log(f"{mode} mode, {ctx.runs} runs per figure; {pinning_note()}")
        results = run_all(ctx, only)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    print(render_table(results))
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
