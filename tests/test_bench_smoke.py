"""Smoke test of the benchmark harness (bench/): its pieces in a minimal mode, asserting on
counts and structure only, never on speed."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import orjson

from bench.harness import Ctx
from bench.payload import BENCH_SECRET, EventFactory, canonical_events_per_request
from bench.prefill import prefill_sqlite
from bench.report import render_table, targets
from bench.workloads import N_ENDPOINTS, fanout, ingest
from bridge.signing import verify_timestamped_hmac


def test_bench_payload_events_are_unique_signed_and_about_3kb() -> None:
    factory = EventFactory(tag="smoke")
    made = [factory.make(i) for i in range(50)]
    ids = {orjson.loads(body)["id"] for _, body, _ in made}
    subs = {orjson.loads(body)["data"]["object"]["id"] for _, body, _ in made}
    assert len(ids) == len(subs) == 50
    assert {event_id for event_id, _, _ in made} == ids
    for _, body, headers in made:
        verify_timestamped_hmac(
            body, headers["Stripe-Signature"], [BENCH_SECRET], tolerance_s=300, now=time.time()
        )
        assert 2800 <= len(body) <= 3800


def test_bench_prefill_writes_distinct_stored_events(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    prefill_sqlite(db, 120)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM inbox").fetchone() == (120,)
        per = canonical_events_per_request()
        assert conn.execute("SELECT COUNT(DISTINCT dedupe_key) FROM events").fetchone() == (
            120 * per,
        )
    finally:
        conn.close()


def test_bench_ingest_and_fanout_minimal_runs(tmp_path: Path) -> None:
    ctx = Ctx(tmp=tmp_path, runs=1, ingest_count=40, fanout_events=3)
    results: dict[str, Any] = {"ingest_sqlite": ingest(ctx), "fanout_sqlite": fanout(ctx)}
    for name in ("baseline_a", "baseline_b", "paybridge"):
        run = results["ingest_sqlite"][name]["runs"][0]
        assert run["statuses"] == {"200": 40}
        assert run["ok"] == 40
        assert run["server_core_speed"] > 0  # bench.calibrate ran before the run
    fan = results["fanout_sqlite"]["paybridge"]["runs"][0]
    assert fan["ingested"] == 3
    assert fan["expected"] == 3 * canonical_events_per_request() * N_ENDPOINTS
    assert fan["delivered"] == fan["expected"]
    assert fan["bad_signatures"] == 0
    base = results["fanout_sqlite"]["baseline_raw_client"]["runs"][0]
    assert base["ok"] == 3 * canonical_events_per_request() * N_ENDPOINTS
    results["targets"] = targets(results)
    table = render_table(results)
    assert "ingest ev/s [sqlite] vs B" in table
    assert "fan-out deliveries/s [sqlite]" in table
    statuses = {t["target"]: t["status"] for t in results["targets"]}
    assert statuses["e2e ack→webhook p99 ms @500/s <= 25"] == "not measured"
    assert statuses["ingest / baseline B (SQLite) >= 0.5"] in ("MET", "MISSED")
    assert statuses["fan-out / raw aiohttp client >= 0.7"] in ("MET", "MISSED")


def test_bench_store_scale_runs_interleaved_with_the_empty_store(tmp_path: Path) -> None:
    from bench.__main__ import run_all

    ctx = Ctx(tmp=tmp_path, runs=2, ingest_count=30, scale_n=60)
    results = run_all(ctx, only=("scale",))
    scale = results["store_scale"]
    assert scale["prefilled_events"] == 60
    assert [r["ok"] for r in scale["prefilled"]["runs"]] == [30, 30]
    assert "prefilled" not in results["ingest_sqlite"]  # reported under store_scale only
    assert [r["ok"] for r in results["ingest_sqlite"]["paybridge"]["runs"]] == [30, 30]
    assert "baseline_a" not in results["ingest_sqlite"]
    assert scale["rate_ratio"] > 0
    statuses = {t["target"]: t["status"] for t in results["targets"]}
    assert statuses["ingest(N) / ingest(empty) >= 0.8"] in ("MET", "MISSED")


def test_bench_lookup_workload_emits_every_basil_one_time_payment(tmp_path: Path) -> None:
    from bench.lookups import lookup_latency

    ctx = Ctx(tmp=tmp_path, runs=1)
    result = lookup_latency(ctx, count=5, rate=50.0)
    assert [(r["acked"], r["emitted"]) for r in result["runs"]] == [(5, 5)]
    assert result["p50_ms"] is not None and result["p99_ms"] is not None
    table = render_table({"lookup": result})
    assert "ack→payment.succeeded" in table


def test_bench_console_pages_minimal_run(tmp_path: Path) -> None:
    from bench.console import console_pages

    ctx = Ctx(tmp=tmp_path, runs=1, scale_n=60)
    db = tmp_path / "p.db"
    prefill_sqlite(db, ctx.scale_n)
    conn = sqlite3.connect(db)
    try:  # the prefill fills the console's look-up columns like ingest does
        assert conn.execute("SELECT COUNT(DISTINCT customer) FROM events").fetchone() == (60,)
    finally:
        conn.close()
    out = console_pages(ctx, db, n=3)
    pages = {k: v for k, v in out.items() if isinstance(v, dict)}
    assert set(pages) >= {"events_first_page", "events_deep_page", "events_by_customer"}
    assert all(p["requests"] == 3 and p["p99_ms"] is not None for p in pages.values())
    assert "console events_first_page p50/p99 ms" in render_table({"console": out})
