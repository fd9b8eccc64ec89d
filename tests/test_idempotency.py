"""bridge/idempotency.py: the repeated-create rule as pure decisions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bridge.idempotency import KEYED_WINDOW_S, REPLAY_WINDOW_S, decide, replay_id
from bridge.store.base import Subscriber

BODY = {"url": "https://a.example/h", "enabled_events": ["*"]}
WANTED = Subscriber(
    id="we_new",
    kind="endpoint",
    enabled_events=["*"],
    url="https://a.example/h",
    secret="whsec_new",
    livemode=True,
    created_at=1000.0,
)


def test_replay_id_depends_on_caller_mode_body_and_key() -> None:
    base = replay_id("app:x", True, BODY, None)
    assert base.startswith("we_") and len(base) == 27
    assert base == replay_id("app:x", True, dict(reversed(BODY.items())), None)
    others = {
        replay_id("app:y", True, BODY, None),
        replay_id("app:x", False, BODY, None),
        replay_id("app:x", True, {**BODY, "description": "d"}, None),
        replay_id("app:x", True, BODY, "k1"),
    }
    assert base not in others and len(others) == 4
    assert replay_id("app:x", True, BODY, "k1") == replay_id("app:x", True, {"other": 1}, "k1")


def _existing(**changes: object) -> Subscriber:
    fields: dict[str, object] = {"id": "we_first", "secret": "whsec_first", **changes}
    return replace(WANTED, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("existing", "keyed", "secret_given", "now", "verdict"),
    [
        (None, False, False, 1000.0, "create"),
        (_existing(), False, False, 1000.0 + REPLAY_WINDOW_S, "replay"),
        (_existing(), False, False, 1001.0 + REPLAY_WINDOW_S, "create_elsewhere"),
        (_existing(url="https://a.example/moved"), False, False, 1001.0, "create_elsewhere"),
        (_existing(livemode=False), False, False, 1001.0, "create_elsewhere"),
        (_existing(), False, True, 1001.0, "create_elsewhere"),  # another secret was asked for
        (_existing(secret="whsec_new"), False, True, 1001.0, "replay"),
        (_existing(status="disabled"), False, False, 1001.0, "replay"),  # status may change
        (_existing(), True, False, 1000.0 + KEYED_WINDOW_S, "replay"),
        (_existing(enabled_events=["invoice.*"]), True, False, 1001.0, "conflict"),
        (_existing(enabled_events=["invoice.*"]), True, False, 1e9, "create_elsewhere"),
    ],
)
def test_decide(
    existing: Subscriber | None, keyed: bool, secret_given: bool, now: float, verdict: str
) -> None:
    assert decide(existing, WANTED, keyed=keyed, secret_given=secret_given, now=now) == verdict
