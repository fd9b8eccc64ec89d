"""Webhook-endpoint operations, shared by the admin API, the CLI and the console.

Each operation takes the :class:`~bridge.store.base.Store` and the :class:`~bridge.config.Config`
(and a clock where time matters) and knows nothing of HTTP, terminals or pages: it validates,
applies the rules and writes. Rules, the same whoever calls:

* ``enabled_events`` hold catalog types, ``*`` or a family wildcard (``customer.subscription.*``);
* the URL passes the SSRF guard at registration unless ``delivery.allow_private_networks``;
* an endpoint must be signable: ``standard`` needs a ``whsec_<base64>`` secret, ``blocklet``
  needs ``sources.payment_kit.app_secret_key``;
* endpoints from the YAML config are read-only (:class:`EndpointReadOnlyError`);
* secrets are handed back only by :func:`create_endpoint` and :func:`rotate_secret`;
* ``livemode=None`` means "any mode"; ``True``/``False`` restrict a look-up to that mode, so an
  endpoint of the other mode is not found.

Failures raise :class:`~bridge.errors.RequestError` subclasses (``InvalidEndpointError`` 400,
``EndpointNotFoundError`` 404, ``EndpointConflictError``/``EndpointReadOnlyError`` 409) and
store failures :class:`~bridge.errors.StoreError`; nothing is written when one is raised.
A running dispatcher reloads subscribers on its own after a while; in-process callers that
want the change seen at once call ``Dispatcher.invalidate()`` (the admin API does).
"""

from __future__ import annotations

import secrets as _secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict

from bridge.api_models import EndpointCreate, EndpointUpdate, validate
from bridge.catalog import CATALOG, matches
from bridge.config import Config
from bridge.errors import (
    EndpointConflictError,
    EndpointNotFoundError,
    EndpointReadOnlyError,
    InvalidEndpointError,
    RequestError,
    UnsafeURLError,
)
from bridge.events import Event
from bridge.idempotency import decide, replay_id
from bridge.recovery import RecoveryResult
from bridge.retry import Outcome, classify
from bridge.signing import generate_endpoint_secret, standard_webhook_headers
from bridge.since import parse_since
from bridge.ssrf import check_url
from bridge.store.base import Page, Store, Subscriber

__all__ = [
    "Clock",
    "SentTestEvent",
    "WithSecret",
    "check_signable",
    "create_endpoint",
    "delete_endpoint",
    "get_endpoint",
    "list_endpoints",
    "make_sample_event",
    "recover_endpoint",
    "rotate_secret",
    "sample_event_type",
    "send_test_event",
    "set_enabled",
    "update_endpoint",
    "writable_endpoint",
]

Clock = Callable[[], float]
_MIN_SECRET_LEN = 16


@dataclass(frozen=True, slots=True)
class WithSecret:
    """An endpoint and its (new) signing secret: what create and rotate hand back once."""

    endpoint: Subscriber
    secret: str
    replayed: bool = False  # a repeated create answered with the endpoint the first one made

    def __repr__(self) -> str:  # never show the secret
        return f"WithSecret(endpoint={self.endpoint!r})"


@dataclass(frozen=True, slots=True)
class SentTestEvent:
    """The outcome of :func:`send_test_event`: one signed POST, not stored, not retried."""

    event: Event
    delivered: bool
    status_code: int | None
    error: str | None
    response_body: str | None
    duration_ms: float


def _app_secret_key(config: Config) -> str | None:
    pk = config.sources.payment_kit
    return pk.app_secret_key.get_secret_value() if pk and pk.app_secret_key else None


def check_signable(sub: Subscriber, config: Config) -> None:
    """Refuse an endpoint that could never be signed for, instead of failing every delivery.

    Raises:
        InvalidEndpointError: ``standard`` with a secret that is not ``whsec_<base64 key>``, a
            missing secret for ``standard``/``stripe``, or ``blocklet`` while
            ``sources.payment_kit.app_secret_key`` is not configured.
    """
    if sub.signature == "blocklet":
        if _app_secret_key(config) is None:
            raise InvalidEndpointError(
                "signature: 'blocklet' needs sources.payment_kit.app_secret_key in the config"
            )
        return
    if not sub.secret:
        raise InvalidEndpointError(f"secret: required for signature {sub.signature!r}")
    if sub.signature == "standard":
        try:  # the real signer is the authority on what a usable key is
            standard_webhook_headers("probe", 0, b"", [sub.secret])
        except ValueError:
            raise InvalidEndpointError(
                "secret: signature 'standard' needs whsec_<base64 key> (Standard Webhooks)"
            ) from None


async def _check_url(url: str, config: Config) -> None:
    try:
        await check_url(url, allow_private=config.delivery.allow_private_networks)
    except UnsafeURLError as exc:
        raise InvalidEndpointError(f"url: {exc}") from None


async def writable_endpoint(
    store: Store, endpoint_id: str, *, livemode: bool | None = None
) -> Subscriber:
    """One endpoint that may be changed. Raises EndpointNotFoundError (unknown, or of the
    other livemode) or EndpointReadOnlyError (it comes from the YAML config)."""
    sub = await get_endpoint(store, endpoint_id, livemode=livemode)
    if sub.created_via == "config":
        raise EndpointReadOnlyError(
            f"endpoint {sub.id} comes from the YAML config, its source of truth; edit it there"
        )
    return sub


async def list_endpoints(
    store: Store, *, livemode: bool | None = None, offset: int = 0, limit: int = 20
) -> Page[Subscriber]:
    """Webhook endpoints (not bus handlers), of one livemode or of both (``None``)."""
    return await store.list_subscribers(
        kind="endpoint", livemode=livemode, offset=offset, limit=limit
    )


async def get_endpoint(
    store: Store, endpoint_id: str, *, livemode: bool | None = None
) -> Subscriber:
    """One endpoint. Raises EndpointNotFoundError when unknown or of the other livemode."""
    sub = await store.get_subscriber(endpoint_id)
    if sub is None or sub.kind != "endpoint" or (livemode is not None and sub.livemode != livemode):
        raise EndpointNotFoundError()
    return sub


async def create_endpoint(
    store: Store,
    config: Config,
    fields: Mapping[str, Any],
    *,
    livemode: bool | None = None,
    caller: str | None = None,
    idempotency_key: str | None = None,
    clock: Clock = time.time,
) -> WithSecret:
    """Register an endpoint from ``fields`` (``url``, ``enabled_events``, optional ``id``,
    ``description``, ``metadata``, ``status``, ``signature``, ``secret``, ``livemode``,
    ``api_version``). A ``livemode`` argument wins over the field. Without a ``secret`` one
    is generated; the secret is returned here and never again (except by a rotation).

    With a ``caller`` (a stable, secret-free name of the credential), a create sent again is
    answered with the endpoint the first one made (``WithSecret.replayed``), by the rule of
    :mod:`bridge.idempotency`; ``idempotency_key`` is the ``Idempotency-Key`` a client sent.

    Raises:
        InvalidEndpointError: a field fails validation, the URL is refused, or the endpoint
            cannot be signed for.
        EndpointConflictError: ``id`` is taken, or ``idempotency_key`` was used before for
            another request.
    """
    body = validate(EndpointCreate, fields, InvalidEndpointError)
    await _check_url(body.url, config)
    if body.id is not None and await store.get_subscriber(body.id) is not None:
        raise EndpointConflictError(f"webhook endpoint {body.id} already exists")
    now = clock()
    sub = body.to_subscriber(secret=body.secret or generate_endpoint_secret(), now=now)
    if livemode is not None:
        sub = replace(sub, livemode=livemode)
    check_signable(sub, config)
    if caller is not None and body.id is None:
        request = body.model_dump(mode="json", exclude={"livemode"})
        rid = replay_id(caller, sub.livemode, request, idempotency_key)
        existing = await store.get_subscriber(rid)
        verdict = decide(
            existing,
            sub,
            keyed=idempotency_key is not None,
            secret_given=body.secret is not None,
            now=now,
        )
        if verdict == "replay" and existing is not None:
            return WithSecret(existing, existing.secret or "", replayed=True)
        if verdict == "conflict":
            raise EndpointConflictError("Idempotency-Key already used for a different request")
        if verdict == "create":
            sub = replace(sub, id=rid)
    await store.put_subscriber(sub)
    return WithSecret(sub, sub.secret or "")


async def update_endpoint(
    store: Store,
    config: Config,
    endpoint_id: str,
    fields: Mapping[str, Any],
    *,
    livemode: bool | None = None,
    clock: Clock = time.time,
) -> Subscriber:
    """Change the fields given (``url``, ``enabled_events``, ``description``, ``metadata``,
    ``status``, ``signature``); the others stay. Enabling clears the failure streak.

    Raises:
        EndpointNotFoundError, EndpointReadOnlyError, InvalidEndpointError.
    """
    sub = await writable_endpoint(store, endpoint_id, livemode=livemode)
    body = validate(EndpointUpdate, fields, InvalidEndpointError)
    if body.url is not None:
        await _check_url(body.url, config)
    new = body.apply(sub, now=clock())
    check_signable(new, config)
    await store.put_subscriber(new)
    return new


async def set_enabled(
    store: Store,
    config: Config,
    endpoint_id: str,
    enabled: bool,
    *,
    livemode: bool | None = None,
    clock: Clock = time.time,
) -> Subscriber:
    """Enable (clearing a failure streak and its disabled reason) or disable an endpoint;
    nothing is sent to a disabled one until it is enabled again.

    Raises:
        EndpointNotFoundError, EndpointReadOnlyError.
    """
    status = "enabled" if enabled else "disabled"
    return await update_endpoint(
        store, config, endpoint_id, {"status": status}, livemode=livemode, clock=clock
    )


async def rotate_secret(
    store: Store,
    config: Config,
    endpoint_id: str,
    secret: str | None = None,
    *,
    livemode: bool | None = None,
    clock: Clock = time.time,
) -> WithSecret:
    """Give the endpoint a new secret (``secret``, else a generated one). The old one keeps
    signing beside it for ``delivery.secret_rotation_overlap_s``.

    Raises:
        EndpointNotFoundError, EndpointReadOnlyError, InvalidEndpointError (a secret under
        16 characters, or not ``whsec_<base64>`` for ``standard``).
    """
    sub = await writable_endpoint(store, endpoint_id, livemode=livemode)
    if secret is not None and len(secret) < _MIN_SECRET_LEN:
        raise InvalidEndpointError("secret: must be at least 16 characters (whsec_… recommended)")
    now = clock()
    new_secret = secret or generate_endpoint_secret()
    new = replace(
        sub,
        secret=new_secret,
        previous_secret=sub.secret,
        previous_secret_expires_at=now + config.delivery.secret_rotation_overlap_s,
        updated_at=now,
    )
    check_signable(new, config)
    await store.put_subscriber(new)
    return WithSecret(new, new_secret)


async def delete_endpoint(
    store: Store, endpoint_id: str, *, livemode: bool | None = None
) -> Subscriber:
    """Delete an endpoint and its pending deliveries; returns what was deleted.

    Raises:
        EndpointNotFoundError, EndpointReadOnlyError.
    """
    sub = await writable_endpoint(store, endpoint_id, livemode=livemode)
    if not await store.delete_subscriber(sub.id):
        raise EndpointNotFoundError()  # deleted by someone else meanwhile
    return sub


class _RecoverRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    since: str | int | float
    dry_run: bool = False


async def recover_endpoint(
    store: Store,
    endpoint_id: str,
    fields: Mapping[str, Any],
    *,
    now: float,
    livemode: bool | None = None,
) -> RecoveryResult:
    """Recover ``endpoint_id`` as asked by ``fields`` (``since``: unix seconds, an ISO 8601
    time or a duration such as ``2h``; ``dry_run``), for the admin API and the CLI alike.

    Raises:
        RequestError: a missing or bad field (400).
        EndpointNotFoundError: no such endpoint (in that livemode).
    """
    body = validate(_RecoverRequest, fields)
    try:
        since = parse_since(body.since, now=now)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    await get_endpoint(store, endpoint_id, livemode=livemode)
    try:
        return await store.recover(endpoint_id, since=since, now=now, dry_run=body.dry_run)
    except LookupError:  # deleted meanwhile
        raise EndpointNotFoundError() from None


def sample_event_type(sub: Subscriber) -> str:
    """The type a test event for ``sub`` has: its first pattern's first catalog type."""
    for pattern in sub.enabled_events:
        for event_type in CATALOG:
            if matches(pattern, event_type):
                return event_type
    return next(iter(CATALOG))


def make_sample_event(sub: Subscriber, *, now: float, event_type: str | None = None) -> Event:
    """A sample canonical event for ``sub`` (its livemode, a fresh id, a marked object)."""
    token = _secrets.token_hex(12)
    return Event.make(
        type=event_type or sample_event_type(sub),
        dedupe_key=f"test:{token}",
        source="payment_kit",
        source_event_id=f"evt_test_{token}",
        created=int(now),
        data_object={"id": f"test_{token}", "object": "test", "test": True},
        livemode=sub.livemode,
    )


async def send_test_event(
    store: Store,
    config: Config,
    endpoint_id: str,
    *,
    event_type: str | None = None,
    livemode: bool | None = None,
    clock: Clock = time.time,
) -> SentTestEvent:
    """POST one sample event to the endpoint, signed with its scheme and secret, and report
    what came back. Nothing is stored and nothing is retried; disabled endpoints are sent to
    too (that is how an operator checks one before enabling it).

    Raises:
        EndpointNotFoundError; InvalidEndpointError when ``event_type`` is not a catalog type.
    """
    from bridge.transport import AiohttpTransport
    from bridge.webhook import WebhookSender, describe_error

    sub = await get_endpoint(store, endpoint_id, livemode=livemode)
    if event_type is not None and event_type not in CATALOG:
        raise InvalidEndpointError(f"event type {event_type!r} is not in the catalog")
    event = make_sample_event(sub, now=clock(), event_type=event_type)
    transport = AiohttpTransport.from_config(config.delivery)
    sender = WebhookSender(transport=transport, app_secret_key=_app_secret_key(config), clock=clock)
    try:
        result = await sender.send(sub, event)
    finally:
        await transport.close()
    # The dispatcher's one rule: a received 2xx is delivered even if reading the body failed.
    delivered = classify(result.status, result.error) is Outcome.DELIVERED
    return SentTestEvent(
        event=event,
        delivered=delivered,
        status_code=result.status,
        error=describe_error(result.error) if result.error is not None else None,
        response_body=result.response_body,
        duration_ms=result.duration_ms,
    )
