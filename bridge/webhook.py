"""Outbound webhook requests: body, signature headers per scheme, one POST per attempt through
an injected transport.

Schemes: ``standard`` (Standard Webhooks, the default),
``stripe`` (``X-Webhook-Signature: t=…,v1=…``) and ``blocklet`` (Blocklet component signature
over a Payment Kit webhook-event body). The real transport (:mod:`bridge.transport`) refuses
private addresses unless allowed (:mod:`bridge.ssrf`), follows no redirects, keeps no cookies
and ignores proxy variables.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import orjson
from yarl import URL

from bridge.errors import BridgeError, ResponseError
from bridge.events import Event
from bridge.signing import standard_webhook_headers, stripe_scheme_headers
from bridge.ssrf import find_unsafe_address_error
from bridge.store.base import Subscriber
from bridge.transport import Transport

__all__ = ["USER_AGENT", "SendResult", "WebhookSender", "build_request", "describe_error"]

_TARGETS_KEPT = 10_000  # parsed endpoint URLs kept (forgotten all at once past this)
USER_AGENT = "paybridge-webhooks/0.1"


@dataclass(frozen=True, slots=True)
class SendResult:
    """What one POST gave: a status, or the error that stopped it."""

    status: int | None
    error: BaseException | None
    response_body: str | None
    retry_after: str | None
    duration_ms: float


def build_request(
    sub: Subscriber, event: Event, *, now: float, app_secret_key: str | None
) -> tuple[bytes, dict[str, str]]:
    """The body and headers for delivering ``event`` to ``sub``.

    Raises:
        ValueError: the subscriber cannot be signed for (no secret, a secret that is not
            ``whsec_<base64>`` for ``standard``, or ``blocklet`` without
            ``sources.payment_kit.app_secret_key``).
        ConfigError: ``blocklet`` with an app secret key that cannot be parsed.
        TypeError: the event cannot be canonicalized for a ``blocklet`` signature."""
    ts = int(now)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if sub.signature == "blocklet":
        from bridge.blocklet import sign_component, to_payment_kit_event

        if not app_secret_key:
            raise ValueError("signature 'blocklet' needs sources.payment_kit.app_secret_key")
        obj = to_payment_kit_event(event)
        body = orjson.dumps(obj)
        parts = urlsplit(sub.url or "")
        headers.update(
            sign_component(
                body=obj,
                method="post",
                path=parts.path or "/",
                query=dict(parse_qsl(parts.query)),
                secret_key=app_secret_key,
                now=ts,
            )
        )
        headers["webhook-id"] = event.id
        return body, headers
    body = event.to_json()
    secrets = sub.signing_secrets(now)
    if not secrets:
        raise ValueError(f"endpoint {sub.id} has no signing secret")
    if sub.signature == "stripe":
        headers.update(stripe_scheme_headers(ts, body, secrets))
        headers["webhook-id"] = event.id
    else:
        headers.update(standard_webhook_headers(event.id, ts, body, secrets))
    return body, headers


class WebhookSender:
    """Signs and POSTs one attempt through an injected :class:`bridge.transport.Transport`;
    :meth:`send` never raises for network or HTTP failures (they come back in
    :class:`SendResult`). The transport is the caller's: it opens and closes it."""

    def __init__(
        self,
        *,
        transport: Transport,
        app_secret_key: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._transport = transport
        self._app_secret_key = app_secret_key
        self._clock = clock
        self._targets: dict[str, URL] = {}

    async def send(self, sub: Subscriber, event: Event) -> SendResult:
        """POST ``event`` to ``sub.url``, signed for ``sub``; no redirects followed.

        Never raises for a failed attempt: a request that cannot be signed (see
        :func:`build_request`), a refused address, a timeout, a connection error or a broken
        response comes back as ``SendResult.error``."""
        started = time.perf_counter()
        try:
            body, headers = build_request(
                sub, event, now=self._clock(), app_secret_key=self._app_secret_key
            )
        except (ValueError, TypeError, BridgeError) as exc:  # a configuration problem
            return SendResult(None, exc, None, None, 0.0)
        try:
            resp = await self._transport.post(self._target(sub.url or ""), body, headers)
        except (TimeoutError, OSError, ValueError, ResponseError) as exc:
            return SendResult(None, exc, None, None, (time.perf_counter() - started) * 1000)
        return SendResult(
            resp.status,
            resp.error,
            resp.body.decode("utf-8", "replace"),
            resp.headers.get("Retry-After"),
            (time.perf_counter() - started) * 1000,
        )

    def _target(self, url: str) -> URL:
        """``url`` parsed once and kept (forgotten all at once past ``_TARGETS_KEPT``).
        Raises ValueError for a URL that does not parse."""
        target = self._targets.get(url)
        if target is None:
            target = URL(url)
            if len(self._targets) >= _TARGETS_KEPT:
                self._targets.clear()
            self._targets[url] = target
        return target


def describe_error(exc: BaseException) -> str:
    """A short, secret-free description of a failed attempt."""
    unsafe = find_unsafe_address_error(exc)
    if unsafe is not None:
        return f"refused by SSRF guard: {unsafe}"
    if isinstance(exc, TimeoutError):
        return "timeout"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]
