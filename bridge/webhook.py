"""Outbound webhook requests: body, signature headers per scheme, one guarded POST.

Schemes (DESIGN.md "Outbound webhook request"): ``standard`` (Standard Webhooks, the default),
``stripe`` (``X-Webhook-Signature: t=…,v1=…``) and ``blocklet`` (Blocklet component signature
over a Payment Kit webhook-event body). The HTTP client (:mod:`bridge.http_client`) refuses
private addresses unless allowed (:mod:`bridge.ssrf`), follows no redirects, keeps no cookies
and ignores proxy variables.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import orjson
from aiohttp.abc import AbstractResolver
from yarl import URL

from bridge.errors import BridgeError
from bridge.events import Event
from bridge.http_client import WebhookHTTP
from bridge.signing import standard_webhook_headers, stripe_scheme_headers
from bridge.ssrf import check_ip_literal_host, find_unsafe_address_error
from bridge.store.base import Subscriber

__all__ = ["USER_AGENT", "SendResult", "WebhookSender", "build_request", "describe_error"]

_RESPONSE_BODY_MAX = 1024
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
    """Owns the outbound HTTP session; :meth:`send` makes one attempt and never raises for
    network or HTTP failures (they come back in :class:`SendResult`)."""

    def __init__(
        self,
        *,
        timeout_s: float,
        allow_private_networks: bool,
        app_secret_key: str | None = None,
        clock: Callable[[], float] = time.time,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._timeout_s = timeout_s
        self._allow_private = allow_private_networks
        self._app_secret_key = app_secret_key
        self._clock = clock
        self._resolver = resolver
        self._http: WebhookHTTP | None = None
        self._targets: dict[str, URL] = {}

    async def start(self) -> None:
        """Open the guarded HTTP client (call once, before :meth:`send`)."""
        self._http = WebhookHTTP(
            timeout_s=self._timeout_s,
            allow_private=self._allow_private,
            body_limit=_RESPONSE_BODY_MAX,
            resolver=self._resolver,
        )

    async def close(self) -> None:
        """Close the HTTP client; idempotent."""
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def send(self, sub: Subscriber, event: Event) -> SendResult:
        """POST ``event`` to ``sub.url``, signed for ``sub``; no redirects followed.

        Never raises for a failed attempt: a request that cannot be signed (see
        :func:`build_request`), a refused address, a timeout or a connection error comes back
        as ``SendResult.error``. Raises AssertionError when :meth:`start` was not called."""
        assert self._http is not None, "WebhookSender.start() was not called"
        started = time.perf_counter()
        try:
            body, headers = build_request(
                sub, event, now=self._clock(), app_secret_key=self._app_secret_key
            )
        except (ValueError, TypeError, BridgeError) as exc:  # a configuration problem
            return SendResult(None, exc, None, None, 0.0)
        try:
            resp = await self._http.post(self._target(sub.url or ""), body, headers)
        except (TimeoutError, OSError, ValueError) as exc:
            return SendResult(None, exc, None, None, (time.perf_counter() - started) * 1000)
        return SendResult(
            resp.status,
            resp.error,
            resp.body.decode("utf-8", "replace"),
            resp.headers.get("retry-after"),
            (time.perf_counter() - started) * 1000,
        )

    def _target(self, url: str) -> URL:
        """``url`` parsed, its host checked if it is an IP literal (host names are checked by
        :class:`WebhookHTTP` when connecting). The verdict on a literal never changes, so
        it is kept per URL. Raises UnsafeAddressError (an OSError) or ValueError."""
        target = self._targets.get(url)
        if target is None:
            target = URL(url)
            check_ip_literal_host(target.raw_host or "", allow_private=self._allow_private)
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
