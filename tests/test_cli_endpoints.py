"""`paybridge endpoints …` as an operator runs it: against the configured store, sending to a
real local receiver, with the admin API's validation, SSRF rules and read-only YAML endpoints."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from standardwebhooks import Webhook

from bridge.cli import main
from bridge.service import Bridge
from tests.conftest import make_config
from tests.operator import write_config
from tests.receivers import always, running

YAML_SECRET = "whsec_ZGV2LWJpbGxpbmctc2VjcmV0LWNoYW5nZS1tZQ=="
YAML_ENDPOINT = f"""
endpoints:
  - id: we_yaml
    url: "http://127.0.0.1:9/hook"
    enabled_events: ["customer.subscription.started"]
    secret: {YAML_SECRET}
"""


async def _config(tmp_path: Path, extra: str = YAML_ENDPOINT) -> Path:
    """A config whose store already holds its YAML endpoints (the service ran once)."""
    cfg = make_config(tmp_path, extra)
    async with Bridge(cfg):
        pass
    return write_config(tmp_path, cfg, {"we_yaml": YAML_SECRET})


class Cli:
    """``paybridge … -c config`` in this process; answers (exit status, stdout, stderr)."""

    def __init__(self, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.config, self.capsys = config, capsys

    async def __call__(self, *args: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, [*args, "-c", str(self.config)])
        out = self.capsys.readouterr()
        return code, out.out, out.err

    async def json(self, *args: str) -> Any:
        code, out, err = await self(*args, "--json")
        assert code == 0, err
        return orjson.loads(out)


async def test_cli_endpoints_lifecycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = Cli(await _config(tmp_path), capsys)
    async with running(always(200, "thanks")) as (rcv,):
        created = await cli.json(
            "endpoints",
            "add",
            "--url",
            rcv.url(),
            "--events",
            "customer.subscription.*,refund.succeeded",
            "--description",
            "orders",
            "--metadata",
            "team=billing",
        )
        ep = created["id"]
        assert ep.startswith("we_") and created["secret"].startswith("whsec_")
        assert created["metadata"] == {"team": "billing"} and created["created_via"] == "api"
        listed = await cli.json("endpoints", "list")
        assert {e["id"]: e["created_via"] for e in listed} == {ep: "api", "we_yaml": "config"}
        assert all("secret" not in e for e in listed)
        shown = await cli.json("endpoints", "show", ep)
        assert shown["enabled_events"] == ["customer.subscription.*", "refund.succeeded"]

        code, out, _ = await cli("endpoints", "test", ep, "--type", "refund.succeeded")
        assert code == 0 and "delivered" in out and "200 thanks" in out
        (req,) = rcv.requests
        sample = Webhook(created["secret"]).verify(req.body, dict(req.headers))
        assert sample["type"] == "refund.succeeded" and req.headers["webhook-id"] in out

        updated = await cli.json("endpoints", "update", ep, "--events", "refund.succeeded")
        assert updated["enabled_events"] == ["refund.succeeded"]
        assert (await cli.json("endpoints", "disable", ep))["status"] == "disabled"
        assert (await cli.json("endpoints", "enable", ep))["status"] == "enabled"
        rotated = await cli.json("endpoints", "rotate", ep)
        assert rotated["secret"] != created["secret"]
        code, out, _ = await cli("endpoints", "test", ep, "--json")
        answer = orjson.loads(out)
        assert code == 0 and answer["delivered"] and answer["status_code"] == 200
        during = rcv.requests[-1]
        for secret in (created["secret"], rotated["secret"]):  # both sign during the overlap
            Webhook(secret).verify(during.body, dict(during.headers))

        code, out, _ = await cli("endpoints", "delete", ep)
        assert code == 0 and f"deleted {ep}" in out
        code, _, err = await cli("endpoints", "show", ep)
        assert code == 1 and "not_found" in err


async def test_cli_endpoints_text_output_shows_secret_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = Cli(await _config(tmp_path), capsys)
    secret = "whsec_" + "c2VjcmV0LWZvci10aGUtY2xpLXRlc3Q="
    code, out, _ = await cli(
        "endpoints",
        "add",
        "--id",
        "we_text",
        "--url",
        "https://example.com/hook",
        "--events",
        "*",
        "--secret",
        secret,
    )
    assert code == 0 and out.startswith("we_text  enabled") and f"secret: {secret}" in out
    code, out, err = await cli("endpoints", "list")
    assert code == 0 and "we_text" in out and "we_yaml" in out and "(YAML)" in out
    assert secret not in out and "(2 endpoint(s))" in err
    code, out, _ = await cli("endpoints", "show", "we_text")
    assert code == 0 and secret not in out


async def test_cli_endpoints_secret_from_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--secret -`` reads it from stdin: it never shows in the process list or history."""
    cli = Cli(await _config(tmp_path), capsys)
    secret = "whsec_" + "c3RkaW4tc2VjcmV0LWZvci10aGUtY2xp"
    monkeypatch.setattr("sys.stdin", io.StringIO(secret + "\n"))
    created = await cli.json(
        "endpoints", "add", "--url", "https://example.com/h", "--events", "*", "--secret", "-"
    )
    assert created["secret"] == secret


async def test_cli_endpoints_ssrf_guard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    strict = YAML_ENDPOINT.replace('"http://127.0.0.1:9/hook"', "https://example.com/yaml")
    config = await _config(tmp_path, strict + "delivery:\n  allow_private_networks: false\n")
    cli = Cli(config, capsys)
    for url in ("http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://[::1]/x", "file:///etc"):
        code, _, err = await cli("endpoints", "add", "--url", url, "--events", "*")
        assert code == 1 and "invalid_request: url" in err, url
    assert [e["id"] for e in await cli.json("endpoints", "list")] == ["we_yaml"]


async def test_cli_endpoints_refuse_what_the_api_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = Cli(await _config(tmp_path), capsys)
    add = ("endpoints", "add", "--url", "https://example.com/x")
    code, _, err = await cli(*add, "--events", "no.such.type")
    assert code == 1 and "no.such.type" in err
    code, _, err = await cli(*add, "--events", "*", "--secret", "not-a-whsec-secret-at-all")
    assert code == 1 and "whsec_" in err
    code, _, err = await cli(*add, "--events", "*", "--signature", "blocklet")
    assert code == 1 and "app_secret_key" in err
    code, _, err = await cli(*add, "--events", "*", "--metadata", "novalue")
    assert code == 1 and "KEY=VALUE" in err
    code, _, err = await cli(*add, "--events", "*", "--id", "we_yaml")
    assert code == 1 and "already exists" in err
    for args in (
        ("disable", "we_yaml"),
        ("rotate", "we_yaml"),
        ("delete", "we_yaml"),
        ("update", "we_yaml", "--description", "x"),
    ):
        code, _, err = await cli("endpoints", *args)
        assert code == 1 and "YAML" in err, args
    code, _, err = await cli("endpoints", "update", "we_yaml")
    assert code == 1 and "nothing to change" in err
    code, _, err = await cli("endpoints", "test", "we_nope")
    assert code == 1 and "not_found" in err
    assert [e["id"] for e in await cli.json("endpoints", "list")] == ["we_yaml"]


async def test_cli_endpoints_test_reports_a_failing_receiver(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = Cli(await _config(tmp_path), capsys)
    async with running(always(503, "down for maintenance")) as (rcv,):
        ep = (await cli.json("endpoints", "add", "--url", rcv.url(), "--events", "*"))["id"]
        code, out, _ = await cli("endpoints", "test", ep)
    assert code == 1 and "NOT delivered" in out and "503 down for maintenance" in out
    code, out, _ = await cli("endpoints", "test", "we_yaml")  # nothing listens on port 9
    assert code == 1 and "NOT delivered" in out
