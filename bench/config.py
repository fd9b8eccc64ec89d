"""Generated paybridge configs for the benchmark (YAML in a temp dir)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from bench.payload import BENCH_SECRET

__all__ = ["BENCH_ADMIN_KEY", "RECEIVER_SECRET", "write_config"]

RECEIVER_SECRET = "whsec_YmVuY2gtcmVjZWl2ZXItc2VjcmV0LTAxMjM0NTY3ODk="
BENCH_ADMIN_KEY = "bench-admin-key-0123456789"  # the console workload signs in with it


def _sqlite_synchronous() -> dict[str, str]:
    """``BENCH_SQLITE_SYNC=normal`` measures SQLite with ``store.sqlite_synchronous: normal``
    (the default, ``full``, fsyncs every group commit)."""
    mode = os.environ.get("BENCH_SQLITE_SYNC", "")
    return {"sqlite_synchronous": mode} if mode in ("full", "normal") else {}


def write_config(
    directory: Path,
    *,
    store_url: str,
    port: int,
    receiver_ports: list[int] | None = None,
    stripe: dict[str, str] | None = None,
) -> Path:
    """Write ``paybridge.yaml`` into ``directory``: the bench Stripe secret (plus ``stripe``'s
    keys, e.g. ``api_key``/``api_base``), ``store_url``, and one endpoint subscribed to
    everything per receiver port (private networks allowed)."""
    endpoints = [
        {
            "id": f"we_bench_{i}",
            "url": f"http://127.0.0.1:{p}/hook",
            "enabled_events": ["*"],
            "secret": RECEIVER_SECRET,
        }
        for i, p in enumerate(receiver_ports or [])
    ]
    data = {
        "server": {"host": "127.0.0.1", "port": port},
        "store": {"url": store_url, **_sqlite_synchronous()},
        "admin": {"api_keys": [BENCH_ADMIN_KEY]},
        "sources": {"stripe": {"signing_secrets": [BENCH_SECRET], **(stripe or {})}},
        "endpoints": endpoints,
        "delivery": {"allow_private_networks": True, "timeout_s": 15},
        # Per-event transition lines are INFO: the figures measure the service, not stderr
        # (their cost per event is in bench/PERFORMANCE.md, "Structured logs").
        "logging": {"level": "WARNING"},
    }
    path = directory / "paybridge.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
