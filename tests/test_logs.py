"""Structured logs: a line per state transition with the ids that follow an event, as JSON
objects a log pipeline (or jq) reads, and never a secret or a payload."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge.logs import configure_logging
from tests.conftest import (
    ADMIN_KEY,
    STRIPE_SECRET,
    BridgeFactory,
    make_config,
    post_stripe,
    stripe_event,
)
from tests.operator import cli, free_port, serve, write_config
from tests.receivers import always, fail_first, running, subscription, wait_until

ENDPOINT_SECRET = "whsec_ZGV2LWJpbGxpbmctc2VjcmV0LWNoYW5nZS1tZQ=="
MARK = "cus_payload_marker_8f2e"  # a value only the provider payload holds


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Root logging configured as `paybridge serve --log-format json` does, into a buffer;
    the previous handlers are put back afterwards."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    out = io.StringIO()
    configure_logging("json", "INFO", stream=out)
    yield out
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved:
        root.addHandler(h)
    root.setLevel(level)


def _lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def _endpoint_yaml(url: str) -> str:
    return (
        "endpoints:\n"
        "  - id: we_logs\n"
        f"    url: {url}\n"
        "    enabled_events: [customer.subscription.started]\n"
        f"    secret: {ENDPOINT_SECRET}\n"
    )


async def test_logs_follow_one_event_from_request_to_delivery(
    make_bridge: BridgeFactory, json_log: io.StringIO
) -> None:
    async with running(fail_first(1)) as (rcv,):
        bridge, client = await make_bridge(_endpoint_yaml(rcv.url()))
        sub = {**subscription("sub_logs"), "customer": MARK}
        event = stripe_event("customer.subscription.created", sub)
        assert (await post_stripe(client, event))[0] == 200
        assert (await post_stripe(client, event))[0] == 200  # the provider's retry
        unknown = stripe_event("radar.early_fraud_warning.created", {"id": "issfr_1"})
        assert (await post_stripe(client, unknown))[0] == 200
        await rcv.wait_count(2)

        async def delivered() -> bool:
            return any(line["message"] == "delivered" for line in _lines(json_log))

        await wait_until(delivered, "a delivered line")
    lines = _lines(json_log)
    mine = [line for line in lines if line.get("provider_event_id") == event["id"]]
    assert [line["message"] for line in mine] == [
        "received",
        "stored",
        "stored",
        "received",
        "duplicate",
    ]
    started = next(line for line in mine if line.get("type") == "customer.subscription.started")
    assert started["subscribers"] == ["we_logs"] and started["level"] == "INFO"
    assert started["transition"] == "stored" and started["logger"] == "bridge.service"
    follow = [line for line in lines if line.get("event_id") == started["event_id"]]
    assert [line["message"] for line in follow] == ["stored", "retry_scheduled", "delivered"]
    retry, done = follow[1], follow[2]
    assert retry["status_code"] == 500 and retry["subscriber_id"] == "we_logs"
    assert retry["attempt"] == 1 and done["attempt"] == 2
    assert retry["delivery_id"] == done["delivery_id"] and done["status_code"] == 200
    assert retry["next_attempt_at"] > 0 and "time" in retry
    ignored = [line for line in lines if line.get("provider_event_id") == unknown["id"]]
    assert [line["message"] for line in ignored] == ["received", "ignored"]
    assert ignored[1]["reason"] and ignored[1]["type"] == "radar.early_fraud_warning.created"
    text = json_log.getvalue()
    for secret in (STRIPE_SECRET, ENDPOINT_SECRET, ADMIN_KEY, MARK):
        assert secret not in text
    await bridge.stop()


async def test_logs_dead_and_endpoint_disabled_are_warnings(
    make_bridge: BridgeFactory, json_log: io.StringIO
) -> None:
    async with running(always(410, "gone")) as (rcv,):
        _bridge, client = await make_bridge(_endpoint_yaml(rcv.url()))
        event = stripe_event("customer.subscription.created", subscription("sub_gone"))
        await post_stripe(client, event)

        async def disabled() -> bool:
            return any(line["message"] == "endpoint_disabled" for line in _lines(json_log))

        await wait_until(disabled, "an endpoint_disabled line")
    lines = _lines(json_log)
    dead = next(line for line in lines if line["message"] == "dead")
    gone = next(line for line in lines if line["message"] == "endpoint_disabled")
    assert dead["level"] == gone["level"] == "WARNING"
    assert dead["status_code"] == 410 and dead["subscriber_id"] == "we_logs"
    assert gone["subscriber_id"] == "we_logs" and "410" in gone["reason"]


def test_logs_json_lines_for_plain_messages_and_tracebacks(json_log: io.StringIO) -> None:
    log = logging.getLogger("bridge.test")
    log.info("plain %s", "message")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("it failed")
    plain, failed = _lines(json_log)
    assert plain["message"] == "plain message" and plain["level"] == "INFO"
    assert failed["level"] == "ERROR" and "RuntimeError: boom" in failed["exc"]


def test_logs_text_format_and_level(json_log: io.StringIO) -> None:
    out = io.StringIO()
    configure_logging("text", "WARNING", stream=out)
    log = logging.getLogger("bridge.test")
    from bridge.logs import transition

    transition(log, "delivered", event_id="evt_1", subscriber_id="we_1", status_code=None)
    transition(log, "dead", event_id="evt_1", subscriber_id="we_1", attempts=[1, 2])
    (line,) = out.getvalue().splitlines()
    assert line.endswith("WARNING bridge.test: dead event_id=evt_1 subscriber_id=we_1 attempts=1,2")


def test_logs_serve_log_format_json_writes_only_json_lines(tmp_path: Path) -> None:
    """`paybridge serve --log-format json`: every line on stderr is one JSON object (pipe it
    through jq), from the start-up line to the shutdown summary."""
    port = free_port()
    path = write_config(tmp_path, make_config(tmp_path))
    with serve(path, port, "--log-format", "json") as served:
        sent = cli(
            "trigger",
            "customer.subscription.created",
            "-c",
            str(path),
            "--to",
            f"{served.url}/webhooks/stripe",
            cwd=tmp_path,
        )
        assert sent.returncode == 0, sent.stderr
    assert served.returncode == 0
    lines = [orjson.loads(line) for line in served.log().splitlines()]
    messages = [line["message"] for line in lines]
    assert "received" in messages and "stored" in messages
    assert messages[-1].startswith("paybridge stopped")
    assert STRIPE_SECRET not in served.log()
