"""Retention as an operator meets it: the config keys, ``paybridge prune [--dry-run]`` and the
pruning a running service does by itself."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.storage import plateau
from bridge.cli import main
from bridge.config import load_config
from bridge.errors import ConfigError
from bridge.service import Bridge
from bridge.store.base import InboxRecord
from bridge.store.retention import DAY_S
from tests.conftest import STRIPE_SECRET, make_config, post_stripe, stripe_event
from tests.receivers import wait_until
from tests.store.store_factories import event, normalized

SUB = {"id": "sub_ret1", "object": "subscription", "customer": "cus_1", "status": "active"}


def _write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_inbox_retention_below_the_provider_retry_window_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, {"retention": {"inbox_days": 2}})
    with pytest.raises(ConfigError, match=r"retention\.inbox_days"):
        load_config(path)
    cfg = load_config(_write(tmp_path, {"retention": {"inbox_days": 3}}))
    assert (cfg.retention.events_days, cfg.retention.attempts_days) == (30, 30)


async def test_cli_prune_dry_run_then_prune(
    tmp_path: Path, make_bridge: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    bridge, client = await make_bridge()
    await post_stripe(client, stripe_event("customer.subscription.created", SUB))
    await client.close()
    data = bridge.config.model_dump(mode="json")
    data["sources"]["stripe"]["signing_secrets"] = [STRIPE_SECRET]
    data["admin"]["api_keys"] = []
    # events older than a millisecond go; inside the inbox window they are kept as their ids
    data["retention"] = {"events_days": 1e-8, "attempts_days": 1e-8, "inbox_days": 3}
    path = _write(tmp_path, data)

    assert await asyncio.to_thread(main, ["prune", "--dry-run", "-c", str(path)]) == 0
    assert "would prune 0 events (2 kept as ids)" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["prune", "-c", str(path)]) == 0
    assert "pruned 0 events (2 kept as ids)" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["events", "list", "--json", "-c", str(path)]) == 0
    assert capsys.readouterr().out.strip() == "[]"


async def test_a_running_service_prunes_by_itself(tmp_path: Path) -> None:
    now = [1_750_000_000.0]
    cfg = make_config(tmp_path, "retention:\n  events_days: 1\n  inbox_days: 3\n")
    bridge = Bridge(cfg, clock=lambda: now[0])
    bridge.prune_every_s = 0.01
    async with bridge:
        fact = event("cs_ret")
        rec = InboxRecord("stripe", "evt_ret", "checkout.session.completed", now[0], b"{}")
        await bridge.store.ingest(
            rec,
            normalized(fact),
            now=now[0],
            correlation_window_s=0,
            owner="a",
            lease_s=30,
            local_handlers=(),
        )
        now[0] += 4 * DAY_S

        async def inbox_empty() -> bool:
            return (await bridge.store.counts())["inbox"] == 0

        await wait_until(inbox_empty, "the service pruned the inbox")
        assert await bridge.store.get_event(fact.id) is None
    text = bridge.metrics.render().decode()
    assert 'paybridge_pruned_rows_total{kind="events"} 1.0' in text
    assert 'paybridge_pruned_rows_total{kind="inbox"} 1.0' in text


def test_the_store_size_stops_growing_after_the_retention_window(tmp_path: Path) -> None:
    """Simulated days of steady traffic through the service (bench/storage.py), pruned at
    each day's end: the file grows for the kept days, then freed pages are reused."""
    sizes = plateau(tmp_path, per_day=240, days=7, retention_days=3)
    assert sizes[3] > 3 * sizes[0]  # it grew while the window filled
    assert max(sizes[4:]) <= sizes[3] * 1.02  # then it stopped
