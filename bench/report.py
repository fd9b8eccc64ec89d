"""The machine description, the targets (issue #14: ratios to baselines measured in the same
run, plus the latency and store-size bounds; issue #17: stored bytes per event), the printed
table and results.json."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

__all__ = ["machine", "render_table", "targets"]


def machine() -> dict[str, Any]:
    """nproc, CPU model, RAM, kernel, Python and the load average when the run started."""
    cpu = "unknown"
    mem_mb = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_mb = int(line.split()[1]) // 1024
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "ram_mb": mem_mb,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def _get(d: dict[str, Any], *path: str) -> Any:
    cur: Any = d
    for p in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(p)
    return cur


def _check(value: float | None, op: str, bound: float) -> str:
    if value is None:
        return "not measured"
    ok = value >= bound if op == ">=" else value <= bound
    return "MET" if ok else "MISSED"


# Same-run ratios and latency bounds only: this machine's speed swings by about 30 %, so an
# absolute events/s figure says more about the VM's phase than about the code.
_TARGETS: list[tuple[str, tuple[str, ...], str, float]] = [
    ("ingest / baseline B (SQLite)", ("ingest_sqlite", "paybridge_over_b"), ">=", 0.5),
    ("ingest / baseline B (SQLite), stretch", ("ingest_sqlite", "paybridge_over_b"), ">=", 0.7),
    ("fan-out / raw aiohttp client", ("fanout_sqlite", "paybridge_over_raw_client"), ">=", 0.7),
    ("e2e ack→webhook p99 ms @500/s", ("e2e", "webhook_p99_ms"), "<=", 25),
    ("e2e ack→bus handler p99 ms @500/s", ("e2e", "bus_p99_ms"), "<=", 2),
    ("RSS MB after N stored events", ("store_scale", "prefilled", "rss_mb"), "<=", 150),
    ("ingest(N) / ingest(empty)", ("store_scale", "rate_ratio"), ">=", 0.8),
    ("stored bytes / raw body (SQLite)", ("storage", "sqlite", "ratio_to_raw_body"), "<=", 2),
    ("stored bytes / raw body (PostgreSQL)", ("storage", "postgres", "ratio_to_raw_body"), "<=", 2),
    ("console events page p99 ms, N stored", ("console", "events_first_page", "p99_ms"), "<=", 200),
]


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Where each target stands in ``results``."""
    out = []
    for name, path, op, bound in _TARGETS:
        value = _get(results, *path)
        out.append(
            {"target": f"{name} {op} {bound:g}", "value": value, "status": _check(value, op, bound)}
        )
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def _console_rows(console: dict[str, Any]) -> list[tuple[str, Any, Any, Any]]:
    """The console pages' p50/p99 (``bench.console``)."""
    return [
        (f"console {name} p50/p99 ms", f"{_fmt(page['p50_ms'])}/{_fmt(page['p99_ms'])}", None, None)
        for name, page in console.items()
        if isinstance(page, dict)
    ]


def _rows(r: dict[str, Any]) -> list[tuple[str, Any, Any, Any]]:
    """(figure, paybridge, baseline, ratio) rows."""
    rows: list[tuple[str, Any, Any, Any]] = []
    for store in ("sqlite", "postgres"):
        ing = r.get(f"ingest_{store}")
        if ing:
            p = ing["paybridge"]
            rows.append((f"ingest ev/s [{store}] vs A", p["rate"],
                         _get(ing, "baseline_a", "rate"), ing.get("paybridge_over_a")))  # fmt: skip
            rows.append((f"ingest ev/s [{store}] vs B", p["rate"],
                         _get(ing, "baseline_b", "rate"), ing.get("paybridge_over_b")))  # fmt: skip
            rows.append((f"ingest p50/p99 ms [{store}]", f"{_fmt(p['p50_ms'])}/{_fmt(p['p99_ms'])}",
                         f"B {_fmt(_get(ing, 'baseline_b', 'p50_ms'))}/"
                         f"{_fmt(_get(ing, 'baseline_b', 'p99_ms'))}", None))  # fmt: skip
            # Events per second of server CPU: the machine's speed drifts, this does less.
            per_cpu = p.get("rate_per_server_cpu")
            b_cpu = _get(ing, "baseline_b", "rate_per_server_cpu")
            ratio = round(per_cpu / b_cpu, 3) if per_cpu and b_cpu else None
            rows.append((f"ingest ev per server-CPU-s [{store}]", per_cpu, b_cpu, ratio))
        fan = r.get(f"fanout_{store}")
        if fan:
            rows.append((f"fan-out deliveries/s [{store}]", _get(fan, "paybridge", "rate"),
                         _get(fan, "baseline_raw_client", "rate"),
                         fan.get("paybridge_over_raw_client")))  # fmt: skip
    e2e = r.get("e2e")
    if e2e:
        rows.append(("e2e ack→webhook p50/p99 ms", f"{_fmt(e2e['webhook_p50_ms'])}/"
                     f"{_fmt(e2e['webhook_p99_ms'])}", None, None))  # fmt: skip
        rows.append(("e2e ack→bus p50/p99 ms", f"{_fmt(e2e['bus_p50_ms'])}/"
                     f"{_fmt(e2e['bus_p99_ms'])}", None, None))  # fmt: skip
    lookup = r.get("lookup")
    if lookup:
        rows.append(("basil one-time PI, api_key: ack→payment.succeeded p50/p99 ms",
                     f"{_fmt(lookup['p50_ms'])}/{_fmt(lookup['p99_ms'])}", None, None))  # fmt: skip
    sc = r.get("store_scale")
    if sc:
        n = sc["prefilled_events"]
        rows.append((f"ingest ev/s, {n:,} stored vs empty", _get(sc, "prefilled", "rate"),
                     _get(sc, "empty", "rate"), sc.get("rate_ratio")))  # fmt: skip
        rows.append((f"RSS MB, {n:,} stored vs empty", _get(sc, "prefilled", "rss_mb"),
                     _get(sc, "empty", "rss_mb"), None))  # fmt: skip
    st = r.get("storage") or {}
    for store in ("sqlite", "postgres"):
        if store in st:
            s = st[store]
            rows.append((f"stored bytes/event vs raw body [{store}]", s["stored_bytes_per_event"],
                         s["raw_body_bytes"], s["ratio_to_raw_body"]))  # fmt: skip
    if "plateau" in st:
        p = st["plateau"]
        name = f"plateau MB @{p['provider_events_per_day']}/day, {p['retention_days']:g}d kept"
        rows.append((name, p["plateau_mb"], None, None))
    rows += _console_rows(r.get("console") or {})
    return rows


def render_table(results: dict[str, Any]) -> str:
    """The figures and the targets as a fixed-width text table."""
    lines = [f"{'figure':<38} {'paybridge':>14} {'baseline':>14} {'ratio':>7}", "-" * 76]
    for name, value, base, ratio in _rows(results):
        lines.append(f"{name:<38} {_fmt(value):>14} {_fmt(base):>14} {_fmt(ratio):>7}")
    lines += ["", f"{'target':<52} {'value':>12}  status", "-" * 76]
    for t in results.get("targets", []):
        lines.append(f"{t['target']:<52} {_fmt(t['value']):>12}  {t['status']}")
    return "\n".join(lines)
