"""docs/operations.md cannot drift from the code: its alert rules parse and use only metrics
that /metrics serves, and every command it lists exists in the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bridge.cli import main
from tests.conftest import BridgeFactory

DOC = Path(__file__).resolve().parents[1] / "docs" / "operations.md"
ENDPOINT = """
endpoints:
  - id: we_doc
    url: "http://127.0.0.1:9/hook"
    enabled_events: ["*"]
    secret: whsec_ZGV2LWJpbGxpbmctc2VjcmV0LWNoYW5nZS1tZQ==
"""


def _rules() -> list[dict[str, object]]:
    text = DOC.read_text(encoding="utf-8")
    block = text[text.index("## Alert rules") :].split("```yaml\n", 1)[1].split("```", 1)[0]
    groups = yaml.safe_load(block)["groups"]
    return [rule for group in groups for rule in group["rules"]]


async def test_operations_doc_alert_rules_use_served_metrics(make_bridge: BridgeFactory) -> None:
    bridge, client = await make_bridge(ENDPOINT)
    served = await (await client.get("/metrics")).text()
    names = set(re.findall(r"^(paybridge_[a-z_]+)", served, re.M))
    rules = _rules()
    assert {r["alert"] for r in rules} >= {
        "PaybridgeDeliveryBacklog",
        "PaybridgeEndpointDisabled",
        "PaybridgeDeadDeliveriesRising",
    }
    for rule in rules:
        used = set(re.findall(r"paybridge_[a-z_]+", str(rule["expr"])))
        assert used and used <= names, (rule["alert"], used - names)
    assert "600" in str(next(r for r in rules if r["alert"] == "PaybridgeDeliveryBacklog")["expr"])
    await bridge.stop()


def _documented_commands() -> list[list[str]]:
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("## Commands") : text.index("### After a receiver outage")]
    commands = []
    for cell in re.findall(r"^\| `paybridge ([^`]+)`", table, re.M):
        words = []
        for word in cell.split():
            if not re.fullmatch(r"[a-z]+", word):
                break
            words.append(word)
        commands.append(words)
    return commands


@pytest.mark.parametrize("words", _documented_commands(), ids=" ".join)
def test_operations_doc_commands_exist(
    words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main([*words, "--help"])
    assert done.value.code == 0
    assert "usage: paybridge " + " ".join(words) in capsys.readouterr().out
