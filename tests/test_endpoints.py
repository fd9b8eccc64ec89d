"""bridge/endpoints.py: the endpoint operations as the CLI and the console call them, on a real
SQLite store, with real local receivers verifying each signature scheme with its own library."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import stripe
from standardwebhooks import Webhook

from bridge import endpoints
from bridge.blocklet import generate_secret_key, public_key_of, verify_component
from bridge.config import Config
from bridge.errors import (
    EndpointConflictError,
    EndpointNotFoundError,
    EndpointReadOnlyError,
    InvalidEndpointError,
    RequestError,
)
from bridge.signing import generate_endpoint_secret
from bridge.store import create_store
from bridge.store.base import Store, Subscriber
from tests.conftest import make_config
from tests.raw_receivers import raw_receiver, replying
from tests.receivers import ManualClock, always, ok, running

STARTED = "customer.subscription.started"
APP_SK = generate_secret_key()


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(
        tmp_path,
        f"sources:\n  payment_kit:\n    app_secret_key: '{APP_SK}'\n"
        "delivery:\n  secret_rotation_overlap_s: 60\n",
    )


@pytest.fixture
async def store(config: Config) -> AsyncIterator[Store]:
    s = create_store(config.store.url)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


async def _yaml_endpoint(store: Store) -> Subscriber:
    sub = Subscriber(
        id="we_yaml",
        kind="endpoint",
        enabled_events=["*"],
        url="http://127.0.0.1:9/y",
        secret=generate_endpoint_secret(),
        created_via="config",
    )
    return await store.put_subscriber(sub)


def _fields(**more: Any) -> dict[str, Any]:
    return {"url": "http://127.0.0.1:9/hook", "enabled_events": [STARTED], **more}


async def test_endpoints_create_get_list_by_livemode(store: Store, config: Config) -> None:
    clock = ManualClock()
    live = await endpoints.create_endpoint(store, config, _fields(), livemode=True, clock=clock)
    test = await endpoints.create_endpoint(store, config, _fields(livemode=True), livemode=False)
    assert live.endpoint.livemode and not test.endpoint.livemode  # the argument wins
    assert live.endpoint.created_at == clock.now
    assert live.secret.startswith("whsec_") and live.secret not in repr(live)
    assert (await endpoints.list_endpoints(store, livemode=True)).count == 1
    assert (await endpoints.list_endpoints(store)).count == 2
    got = await endpoints.get_endpoint(store, live.endpoint.id, livemode=True)
    assert got.url == "http://127.0.0.1:9/hook"
    with pytest.raises(EndpointNotFoundError):
        await endpoints.get_endpoint(store, live.endpoint.id, livemode=False)
    with pytest.raises(EndpointNotFoundError):
        await endpoints.get_endpoint(store, "we_nope")


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        (_fields(enabled_events=["invoice.nope"]), "invoice.nope"),
        (_fields(url="ftp://127.0.0.1/x"), "url"),
        (_fields(secret="long-enough-but-not-whsec"), "whsec_"),
        (_fields(signature="blocklet", url="http://10.0.0.1/x"), None),
        ({"enabled_events": ["*"]}, "url"),
    ],
)
async def test_endpoints_create_validates(
    store: Store, config: Config, fields: dict[str, Any], named: str | None
) -> None:
    if named is None:  # a valid one, as a control: blocklet signs with the app key
        await endpoints.create_endpoint(store, config, fields)
        return
    with pytest.raises(InvalidEndpointError) as info:
        await endpoints.create_endpoint(store, config, fields)
    assert named in str(info.value)
    assert info.value.status == 400
    assert (await endpoints.list_endpoints(store)).count == 0


async def test_endpoints_ssrf_guard_honours_allow_private_networks(
    tmp_path: Path, store: Store
) -> None:
    strict = make_config(tmp_path, "delivery:\n  allow_private_networks: false\n")
    with pytest.raises(InvalidEndpointError, match=r"^url:"):
        await endpoints.create_endpoint(store, strict, _fields())
    assert (await endpoints.list_endpoints(store)).count == 0


async def test_endpoints_blocklet_needs_app_secret_key(tmp_path: Path, store: Store) -> None:
    with pytest.raises(InvalidEndpointError, match="app_secret_key"):
        await endpoints.create_endpoint(store, make_config(tmp_path), _fields(signature="blocklet"))


async def test_endpoints_refuse_a_taken_id(store: Store, config: Config) -> None:
    await _yaml_endpoint(store)
    with pytest.raises(EndpointConflictError) as info:
        await endpoints.create_endpoint(store, config, _fields(id="we_yaml"))
    assert (info.value.status, info.value.error_type) == (409, "conflict")


async def test_endpoints_yaml_ones_are_read_only(store: Store, config: Config) -> None:
    yaml_sub = await _yaml_endpoint(store)
    for call in (
        endpoints.update_endpoint(store, config, "we_yaml", {"description": "x"}),
        endpoints.set_enabled(store, config, "we_yaml", False),
        endpoints.rotate_secret(store, config, "we_yaml"),
        endpoints.delete_endpoint(store, "we_yaml"),
    ):
        with pytest.raises(EndpointReadOnlyError) as info:
            await call
        assert isinstance(info.value, RequestError) and info.value.status == 409
    kept = await endpoints.get_endpoint(store, "we_yaml")
    assert (kept.status, kept.secret, kept.description) == ("enabled", yaml_sub.secret, None)


async def test_endpoints_update_and_set_enabled(store: Store, config: Config) -> None:
    ep = (await endpoints.create_endpoint(store, config, _fields())).endpoint
    clock = ManualClock()
    off = await endpoints.set_enabled(store, config, ep.id, False, clock=clock)
    assert off.status == "disabled"
    await store.put_subscriber(
        Subscriber(**{**_as_dict(off), "failing_since": 1.0, "disabled_reason": "failing"})
    )
    on = await endpoints.set_enabled(store, config, ep.id, True)
    assert (on.status, on.failing_since, on.disabled_reason) == ("enabled", None, None)
    changed = await endpoints.update_endpoint(
        store, config, ep.id, {"enabled_events": ["invoice.*"], "description": "d"}
    )
    assert (changed.enabled_events, changed.description, changed.url) == (
        ["invoice.*"],
        "d",
        ep.url,
    )
    with pytest.raises(InvalidEndpointError, match="colour"):
        await endpoints.update_endpoint(store, config, ep.id, {"colour": "red"})
    with pytest.raises(EndpointNotFoundError):
        await endpoints.update_endpoint(store, config, ep.id, {"status": "enabled"}, livemode=True)


def _as_dict(sub: Subscriber) -> dict[str, Any]:
    return {name: getattr(sub, name) for name in Subscriber.__slots__}


async def test_endpoints_rotate_returns_the_new_secret_once(store: Store, config: Config) -> None:
    clock = ManualClock()
    created = await endpoints.create_endpoint(store, config, _fields())
    rotated = await endpoints.rotate_secret(store, config, created.endpoint.id, clock=clock)
    assert rotated.secret != created.secret
    assert rotated.endpoint.signing_secrets(clock.now) == [rotated.secret, created.secret]
    assert rotated.endpoint.signing_secrets(clock.now + 61) == [rotated.secret]
    given = generate_endpoint_secret()
    again = await endpoints.rotate_secret(store, config, created.endpoint.id, given)
    assert again.secret == given
    with pytest.raises(InvalidEndpointError):
        await endpoints.rotate_secret(store, config, created.endpoint.id, "short")


async def test_endpoints_delete_returns_what_was_deleted(store: Store, config: Config) -> None:
    ep = (await endpoints.create_endpoint(store, config, _fields(), livemode=True)).endpoint
    with pytest.raises(EndpointNotFoundError):
        await endpoints.delete_endpoint(store, ep.id, livemode=False)
    gone = await endpoints.delete_endpoint(store, ep.id, livemode=True)
    assert gone.id == ep.id
    with pytest.raises(EndpointNotFoundError):
        await endpoints.delete_endpoint(store, ep.id)


async def test_endpoints_send_test_event_standard_signature(store: Store, config: Config) -> None:
    async with running(ok()) as (rcv,):
        created = await endpoints.create_endpoint(
            store, config, _fields(url=rcv.url(), enabled_events=["customer.subscription.*"])
        )
        sent = await endpoints.send_test_event(store, config, created.endpoint.id)
        (req,) = await rcv.wait_count(1)
    assert (sent.delivered, sent.status_code, sent.error) == (True, 200, None)
    payload = Webhook(created.secret).verify(req.body, dict(req.headers))
    assert payload["type"].startswith("customer.subscription.")
    assert payload["id"] == sent.event.id == req.headers["webhook-id"]
    assert payload["data"]["object"]["test"] is True
    assert (await store.list_attempts(subscriber_id=created.endpoint.id)).count == 0


async def test_endpoints_send_test_event_stripe_and_blocklet(store: Store, config: Config) -> None:
    async with running(ok(), always(500, "down")) as (rcv, failing):
        stripe_ep = await endpoints.create_endpoint(
            store, config, _fields(url=rcv.url("/s"), signature="stripe")
        )
        blocklet_ep = await endpoints.create_endpoint(
            store, config, _fields(url=rcv.url("/b?t=1"), signature="blocklet")
        )
        down = await endpoints.create_endpoint(store, config, _fields(url=failing.url()))
        await endpoints.send_test_event(
            store, config, stripe_ep.endpoint.id, event_type="invoice.paid"
        )
        await endpoints.send_test_event(store, config, blocklet_ep.endpoint.id)
        failed = await endpoints.send_test_event(store, config, down.endpoint.id)
        s_req, b_req = await rcv.wait_count(2)
    stripe.WebhookSignature.verify_header(
        s_req.body.decode(), s_req.headers["X-Webhook-Signature"], stripe_ep.secret, tolerance=300
    )
    assert orjson.loads(s_req.body)["type"] == "invoice.paid"
    body = orjson.loads(b_req.body)
    verify_component(
        b_req.headers,
        body=body,
        method="POST",
        path="/b",
        query={"t": "1"},
        public_key=public_key_of(APP_SK),
        now=float(b_req.headers["x-component-sig-iat"]),
    )
    assert body["type"] == STARTED
    assert (failed.delivered, failed.status_code, failed.response_body) == (False, 500, "down")
    with pytest.raises(InvalidEndpointError):
        await endpoints.send_test_event(store, config, down.endpoint.id, event_type="nope")


async def test_endpoints_send_test_event_2xx_then_broken_body_is_delivered(
    store: Store, config: Config
) -> None:
    # The dispatcher's rule (bridge.retry.classify): a received 2xx is delivered even when
    # reading its body fails; the test send must report the same.
    broken = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"
    async with raw_receiver(replying(broken, keep_open=False)) as rcv:
        created = await endpoints.create_endpoint(store, config, _fields(url=str(rcv.url)))
        sent = await endpoints.send_test_event(store, config, created.endpoint.id)
    assert (sent.delivered, sent.status_code) == (True, 200)
    assert sent.error is not None
    assert len(rcv.heads) == 1
