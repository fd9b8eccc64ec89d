"""The paybridge CLI, run as a user runs it (a real subprocess for serve, main() otherwise)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from bridge.cli import main
from bridge.config import Config
from tests.conftest import STRIPE_SECRET, make_config, post_stripe, stripe_event
from tests.rawhttp import wait_for_listener

ROOT = Path(__file__).resolve().parents[1]
SUB = {"id": "sub_cli1", "object": "subscription", "customer": "cus_1", "status": "active"}


def _write_config(tmp_path: Path, cfg: Config, **server: Any) -> Path:
    data = cfg.model_dump(mode="json")
    data["sources"]["stripe"]["signing_secrets"] = [STRIPE_SECRET]
    data["admin"]["api_keys"] = []
    data["server"].update(server)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_cli_check_ok_and_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-c", str(ROOT / "config.example.yaml")]) == 0
    assert "config OK" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: {stripe: {signing_secrets: ['${NOPE_NOT_SET_42}']}}")
    assert main(["-c", str(bad), "check"]) == 1
    err = capsys.readouterr().err
    assert "sources.stripe.signing_secrets[0]" in err and "NOPE_NOT_SET_42" in err


def test_cli_check_output_shows_no_secret(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-c", str(ROOT / "config.example.yaml")]) == 0
    out = capsys.readouterr()
    assert "whsec_" not in out.out + out.err and "dev-admin-key" not in out.out + out.err


async def test_cli_events_list_and_show(
    tmp_path: Path, make_bridge: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    bridge, client = await make_bridge()
    await post_stripe(client, stripe_event("customer.subscription.created", SUB))
    await client.close()
    path = _write_config(tmp_path, bridge.config)
    assert await asyncio.to_thread(main, ["events", "list", "-c", str(path), "--json"]) == 0
    listed = orjson.loads(capsys.readouterr().out)
    assert {e["type"] for e in listed} == {
        "customer.subscription.created",
        "customer.subscription.started",
    }
    assert all(e["object"] == "event" and e["dedupe_key"] for e in listed)
    args = ["events", "list", "-c", str(path), "--type", "customer.subscription.started"]
    assert await asyncio.to_thread(main, [*args, "--json", "--limit", "5"]) == 0
    only = orjson.loads(capsys.readouterr().out)
    assert [e["type"] for e in only] == ["customer.subscription.started"]
    show = ["events", "show", only[0]["id"], "-c", str(path), "--json"]
    assert await asyncio.to_thread(main, show) == 0
    shown = orjson.loads(capsys.readouterr().out)
    assert shown["id"] == only[0]["id"] and shown["attempts"] == []
    assert await asyncio.to_thread(main, ["events", "show", "evt_nope", "-c", str(path)]) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_cli_serve_trigger_list_and_sigterm(tmp_path: Path) -> None:
    """`paybridge serve` starts on SQLite, `trigger` sends a signed sample that shows up once in
    `events list --json`, and SIGTERM stops the service cleanly."""
    port = _free_port()
    path = _write_config(tmp_path, make_config(tmp_path), port=port)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "bridge.cli"]
    proc = subprocess.Popen([*cli, "serve", "-c", str(path)], cwd=tmp_path, env=env)
    try:
        wait_for_listener(port, proc)
        out = subprocess.run(
            [*cli, "trigger", "customer.subscription.created", "-c", str(path)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        listed = subprocess.run(
            [*cli, "events", "list", "--json", "-c", str(path)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        types = sorted(e["type"] for e in orjson.loads(listed.stdout))
        assert "customer.subscription.created" in types
        assert len(types) == len(set(types))
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
    assert code == 0


async def test_cli_resend_queues_a_fresh_delivery(
    tmp_path: Path, make_bridge: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = """
endpoints:
  - id: we_cli
    url: "http://127.0.0.1:9/hook"
    enabled_events: ["customer.subscription.started"]
    secret: whsec_ZGV2LWJpbGxpbmctc2VjcmV0LWNoYW5nZS1tZQ==
"""
    bridge, client = await make_bridge(extra)
    await post_stripe(client, stripe_event("customer.subscription.created", SUB))
    started = (await bridge.store.list_events(type="customer.subscription.started")).items[0]
    await client.close()
    path = _write_config(tmp_path, bridge.config)
    data = yaml.safe_load(path.read_text())
    data["endpoints"][0]["secret"] = "whsec_ZGV2LWJpbGxpbmctc2VjcmV0LWNoYW5nZS1tZQ=="
    path.write_text(yaml.safe_dump(data))
    args = ["resend", started.id, "-c", str(path), "--endpoint", "we_cli"]
    assert await asyncio.to_thread(main, args) == 0
    assert "queued 1 delivery" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["resend", "evt_nope", "-c", str(path)]) == 1
