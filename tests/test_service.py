"""Bridge lifecycle details: YAML endpoints re-applied at start."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bridge import Bridge
from tests.conftest import BridgeFactory, make_config, post_stripe, stripe_event

YAML = """
endpoints:
  - id: we_yaml
    url: "{url}"
    enabled_events: ["*"]
    secret: whsec_ZGV2LWJpbGxpbmctc2VjcmV0LWNoYW5nZS1tZQ==
"""


async def test_service_auto_disabled_yaml_endpoint_stays_disabled_until_its_entry_changes(
    tmp_path: Path,
) -> None:
    async with Bridge(make_config(tmp_path, YAML, url="http://127.0.0.1:9/a")) as bridge:
        sub = await bridge.store.get_subscriber("we_yaml")
        assert sub is not None and sub.status == "enabled"
        gone = replace(sub, status="disabled", disabled_reason="endpoint answered 410 Gone")
        await bridge.store.put_subscriber(gone)
    async with Bridge(make_config(tmp_path, YAML, url="http://127.0.0.1:9/a")) as bridge:
        sub = await bridge.store.get_subscriber("we_yaml")
        assert sub is not None and (sub.status, sub.disabled_reason) == (
            "disabled",
            "endpoint answered 410 Gone",
        )
    async with Bridge(make_config(tmp_path, YAML, url="http://127.0.0.1:9/fixed")) as bridge:
        sub = await bridge.store.get_subscriber("we_yaml")
        assert sub is not None and sub.status == "enabled" and sub.disabled_reason is None


async def test_service_yaml_endpoint_removed_from_config_is_deleted(tmp_path: Path) -> None:
    async with Bridge(make_config(tmp_path, YAML, url="http://127.0.0.1:9/a")) as bridge:
        assert await bridge.store.get_subscriber("we_yaml") is not None
    async with Bridge(make_config(tmp_path)) as bridge:
        assert await bridge.store.get_subscriber("we_yaml") is None


async def test_service_sqlite_synchronous_is_applied(tmp_path: Path) -> None:
    for mode, expected in (("full", 2), ("normal", 1)):
        cfg = make_config(tmp_path, f"store: {{{{sqlite_synchronous: {mode}}}}}")
        async with Bridge(cfg) as bridge:
            worker = bridge.store._worker  # type: ignore[attr-defined]
            got = await worker.call(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
            assert got == expected


async def test_service_freeze_gc_after_startup_freezes_what_start_up_loaded(
    tmp_path: Path,
) -> None:
    import gc

    from aiohttp.test_utils import TestServer

    from bridge.app import freeze_gc_after_startup

    app = Bridge(make_config(tmp_path)).web_app()
    freeze_gc_after_startup(app)
    gc.unfreeze()
    thresholds = gc.get_threshold()
    try:
        async with TestServer(app):
            assert gc.get_freeze_count() > 10_000  # modules, pydantic and stripe internals
            assert gc.get_threshold() == (20_000, 20, 20)  # young collections far apart
    finally:
        gc.unfreeze()  # the rest of the test session runs with a normal collector
        gc.set_threshold(*thresholds)


async def test_service_stores_the_provider_object_once_per_request(
    make_bridge: BridgeFactory,
) -> None:
    """A subscription event and its derived "started" share the request's object: stored once
    (in the inbox), rebuilt whole when read back."""
    import sqlite3

    bridge, client = await make_bridge()
    sub = {"id": "sub_once", "object": "subscription", "customer": "cus_1", "status": "active",
           "metadata": {f"k{i}": "v" * 40 for i in range(20)}}  # fmt: skip
    status, body = await post_stripe(client, stripe_event("customer.subscription.created", sub))
    assert status == 200 and len(body["events"]) == 2
    path = bridge.store.path  # type: ignore[attr-defined]
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT length(body), object_of FROM events").fetchall()
    finally:
        conn.close()
    assert len(rows) == 2 and all(size < 700 and of for size, of in rows)
    for event_id in body["events"]:
        event = await bridge.store.get_event(event_id)
        assert event is not None and event.data["object"] == sub
