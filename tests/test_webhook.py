"""bridge/webhook.py: outbound request per signature scheme (checked with the receivers' own
libraries), one POST against real local receivers through the real transport, and what the
sender makes of each answer over a transport without sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
import pytest
import stripe
from aiohttp import web
from multidict import CIMultiDict
from standardwebhooks import Webhook, WebhookVerificationError
from yarl import URL

from bridge.blocklet import generate_secret_key, public_key_of, verify_component
from bridge.errors import ConfigError, ResponseError
from bridge.events import Event
from bridge.retry import Outcome, classify
from bridge.signing import generate_endpoint_secret
from bridge.store.base import Subscriber
from bridge.transport import AiohttpTransport, TransportResponse
from bridge.webhook import SendResult, WebhookSender, build_request, describe_error
from tests.receivers import always, held_by, ok, redirect_to, running

SECRET = generate_endpoint_secret()
OLD_SECRET = generate_endpoint_secret()


def _event(**overrides: Any) -> Event:
    fields: dict[str, Any] = {
        "type": "customer.subscription.started",
        "dedupe_key": "sub:sub_1:started",
        "source": "stripe",
        "source_event_id": "evt_src_1",
        "created": 1_760_000_000,
        "data_object": {"id": "sub_1", "object": "subscription", "amount": 1.0, "name": "Zoë"},
        "object_type": "subscription",
        "object_id": "sub_1",
    }
    fields.update(overrides)
    return Event.make(**fields)


def _sub(url: str = "http://127.0.0.1:9/hook", **overrides: Any) -> Subscriber:
    fields: dict[str, Any] = {
        "id": "we_test",
        "kind": "endpoint",
        "enabled_events": ["*"],
        "url": url,
        "secret": SECRET,
    }
    fields.update(overrides)
    return Subscriber(**fields)


@pytest.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    transport = AiohttpTransport(timeout_s=5, allow_private=True)
    yield WebhookSender(transport=transport)
    await transport.close()


class FakeTransport:
    """A transport without sockets: records each request, answers from ``answers`` in turn
    (a TransportResponse, or an exception to raise)."""

    def __init__(self, *answers: TransportResponse | BaseException) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[URL, bytes, dict[str, str]]] = []

    async def post(self, url: URL, body: bytes, headers: Mapping[str, str]) -> TransportResponse:
        self.requests.append((url, body, dict(headers)))
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def close(self) -> None:
        return None


# -- build_request --------------------------------------------------------------------------


def test_build_request_standard_verifies_with_standardwebhooks() -> None:
    ev = _event()
    body, headers = build_request(_sub(), ev, now=time.time(), app_secret_key=None)
    assert body == ev.to_json()
    assert headers["Content-Type"] == "application/json"
    assert headers["webhook-id"] == ev.id
    assert Webhook(SECRET).verify(body, headers)["id"] == ev.id


def test_build_request_standard_rejected_by_a_different_secret() -> None:
    body, headers = build_request(_sub(), _event(), now=time.time(), app_secret_key=None)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_endpoint_secret()).verify(body, headers)


def test_build_request_standard_during_rotation_verifies_with_old_or_new_secret() -> None:
    now = time.time()
    sub = _sub(previous_secret=OLD_SECRET, previous_secret_expires_at=now + 60)
    body, headers = build_request(sub, _event(), now=now, app_secret_key=None)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(SECRET).verify(body, headers)
    Webhook(OLD_SECRET).verify(body, headers)


def test_build_request_standard_after_overlap_signs_with_new_secret_only() -> None:
    now = time.time()
    sub = _sub(previous_secret=OLD_SECRET, previous_secret_expires_at=now - 1)
    body, headers = build_request(sub, _event(), now=now, app_secret_key=None)
    Webhook(SECRET).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(OLD_SECRET).verify(body, headers)


def test_build_request_stripe_scheme_verifies_with_stripe_library() -> None:
    ev = _event()
    secret = "whsec_plain_stripe_style_secret"
    body, headers = build_request(
        _sub(signature="stripe", secret=secret), ev, now=time.time(), app_secret_key=None
    )
    header = headers["X-Webhook-Signature"]
    assert stripe.WebhookSignature.verify_header(body.decode(), header, secret, tolerance=300)
    assert headers["webhook-id"] == ev.id
    assert "webhook-signature" not in headers


def test_build_request_stripe_scheme_rotation_each_secret_verifies() -> None:
    now = time.time()
    sub = _sub(
        signature="stripe",
        secret="whsec_new_stripe_style_secret",
        previous_secret="whsec_old_stripe_style_secret",
        previous_secret_expires_at=now + 60,
    )
    body, headers = build_request(sub, _event(), now=now, app_secret_key=None)
    header = headers["X-Webhook-Signature"]
    for secret in ("whsec_new_stripe_style_secret", "whsec_old_stripe_style_secret"):
        assert stripe.WebhookSignature.verify_header(body.decode(), header, secret, tolerance=300)


def test_build_request_blocklet_body_and_component_signature_verify() -> None:
    key = generate_secret_key()
    ev = _event()
    url = "http://127.0.0.1:9/api/payment/callback?x=1"
    now = time.time()
    body, headers = build_request(
        _sub(url=url, signature="blocklet", secret=None), ev, now=now, app_secret_key=key
    )
    parsed = orjson.loads(body)
    assert parsed["id"] == ev.id
    assert parsed["type"] == ev.type
    assert headers["webhook-id"] == ev.id
    verify_component(
        headers,
        body=parsed,
        method="POST",
        path="/api/payment/callback",
        query={"x": "1"},
        public_key=public_key_of(key),
        now=now,
    )


def test_build_request_blocklet_without_app_key_raises() -> None:
    with pytest.raises(ValueError, match="app_secret_key"):
        build_request(_sub(signature="blocklet"), _event(), now=time.time(), app_secret_key=None)


def test_build_request_blocklet_with_garbled_app_key_raises_config_error() -> None:
    with pytest.raises(ConfigError):
        build_request(
            _sub(signature="blocklet"), _event(), now=time.time(), app_secret_key="0xnothex"
        )


@pytest.mark.parametrize("secret", [None, "not-a-whsec-secret-at-all"])
def test_build_request_standard_without_usable_secret_raises(secret: str | None) -> None:
    with pytest.raises(ValueError):
        build_request(_sub(secret=secret), _event(), now=time.time(), app_secret_key=None)


# -- send -----------------------------------------------------------------------------------


async def test_sender_posts_signed_body_and_reports_status(sender: WebhookSender) -> None:
    ev = _event()
    async with running(ok()) as (rcv,):
        res = await sender.send(_sub(rcv.url()), ev)
    assert (res.status, res.error, res.response_body) == (200, None, "ok")
    assert classify(res.status, res.error) is Outcome.DELIVERED
    (req,) = rcv.requests
    assert req.method == "POST"
    assert req.body == ev.to_json()
    Webhook(SECRET).verify(req.body, dict(req.headers))


async def test_sender_does_not_follow_redirects(sender: WebhookSender) -> None:
    async with running(ok()) as (target,), running(redirect_to(target.url("/x"))) as (rcv,):
        res = await sender.send(_sub(rcv.url()), _event())
    assert res.status == 302
    assert classify(res.status, res.error) is Outcome.RETRY
    assert len(rcv.requests) == 1
    assert target.requests == []


async def test_sender_truncates_response_body_to_1_kib(sender: WebhookSender) -> None:
    async with running(always(500, "x" * 5000)) as (rcv,):
        res = await sender.send(_sub(rcv.url()), _event())
    assert res.status == 500
    assert res.response_body == "x" * 1024


async def test_sender_keeps_no_cookies_from_endpoints(sender: WebhookSender) -> None:
    async with running(always(200, "ok", {"Set-Cookie": "sid=abc; Path=/"})) as (rcv,):
        for _ in range(2):
            # a host name: aiohttp's default jar would keep this cookie (it skips IP hosts)
            url = rcv.url().replace("127.0.0.1", "localhost")
            assert (await sender.send(_sub(url), _event())).status == 200
    assert [r.headers.get("Cookie") for r in rcv.requests] == [None, None]


async def test_sender_reports_retry_after_header(sender: WebhookSender) -> None:
    async with running(always(429, "", {"Retry-After": "7"})) as (rcv,):
        res = await sender.send(_sub(rcv.url()), _event())
    assert (res.status, res.retry_after) == (429, "7")


async def test_sender_connection_refused_is_an_error_not_an_exception(
    sender: WebhookSender,
) -> None:
    async with running(ok()) as (rcv,):
        url = rcv.url()
    res = await sender.send(_sub(url), _event())  # the receiver is closed now
    assert res.status is None
    assert res.error is not None
    assert classify(res.status, res.error) is Outcome.RETRY
    assert describe_error(res.error)


async def test_sender_times_out() -> None:
    gate = asyncio.Event()
    transport = AiohttpTransport(timeout_s=0.2, allow_private=True)
    try:
        async with running(held_by(gate)) as (rcv,):
            res = await WebhookSender(transport=transport).send(_sub(rcv.url()), _event())
            gate.set()
    finally:
        await transport.close()
    assert res.status is None
    assert isinstance(res.error, TimeoutError)
    assert describe_error(res.error) == "timeout"


async def test_sender_refuses_private_address_when_not_allowed() -> None:
    transport = AiohttpTransport(timeout_s=5, allow_private=False)
    try:
        async with running(ok()) as (rcv,):
            res = await WebhookSender(transport=transport).send(_sub(rcv.url()), _event())
    finally:
        await transport.close()
    assert rcv.requests == []
    assert res.status is None
    assert res.error is not None
    assert describe_error(res.error).startswith("refused by SSRF guard")


async def test_sender_unsignable_subscriber_sends_nothing(sender: WebhookSender) -> None:
    async with running(ok()) as (rcv,):
        res = await sender.send(_sub(rcv.url(), secret=None), _event())
    assert rcv.requests == []
    assert isinstance(res, SendResult)
    assert isinstance(res.error, ValueError)
    assert "no signing secret" in describe_error(res.error)


async def test_sender_response_status_without_body(sender: WebhookSender) -> None:
    async def no_content(_i: int, _r: web.Request) -> web.StreamResponse:
        return web.Response(status=204)

    async with running(no_content) as (rcv,):
        res = await sender.send(_sub(rcv.url()), _event())
    assert (res.status, res.response_body) == (204, "")


# -- send, over a transport without sockets -------------------------------------------------


async def test_sender_hands_the_signed_request_to_its_transport() -> None:
    transport = FakeTransport(TransportResponse(202, CIMultiDict({"Retry-After": "9"}), b"fine"))
    ev, now = _event(), float(int(time.time()))
    res = await WebhookSender(transport=transport, clock=lambda: now).send(_sub(), ev)
    ((url, body, headers),) = transport.requests
    assert (url, body) == (URL("http://127.0.0.1:9/hook"), ev.to_json())
    assert headers["webhook-timestamp"] == str(int(now))
    Webhook(SECRET).verify(body, headers)
    assert (res.status, res.response_body, res.retry_after, res.error) == (202, "fine", "9", None)


async def test_sender_keeps_the_status_when_the_body_failed() -> None:
    cut = TimeoutError()
    transport = FakeTransport(TransportResponse(200, CIMultiDict(), b"par\xff", cut))
    res = await WebhookSender(transport=transport).send(_sub(), _event())
    assert (res.status, res.error, res.response_body) == (200, cut, "par\ufffd")
    assert classify(res.status, res.error) is Outcome.DELIVERED


@pytest.mark.parametrize(
    "failure",
    [TimeoutError(), ConnectionRefusedError(111, "refused"), ResponseError("closed early")],
    ids=["timeout", "connect", "broken-response"],
)
async def test_sender_turns_transport_failures_into_results(failure: BaseException) -> None:
    transport = FakeTransport(failure)
    res = await WebhookSender(transport=transport).send(_sub(), _event())
    assert (res.status, res.error) == (None, failure)
    assert classify(res.status, res.error) is Outcome.RETRY


async def test_sender_with_an_unparseable_url_reports_it_and_sends_nothing() -> None:
    transport = FakeTransport()
    res = await WebhookSender(transport=transport).send(_sub("http://[::1/hook"), _event())
    assert isinstance(res.error, ValueError)
    assert transport.requests == []
