"""The Stripe adapter: ``Stripe-Signature`` verification, event parsing, normalization.

Snapshot events (``"object": "event"``) are parsed with orjson (never
``stripe.Webhook.construct_event``: its ``StripeObject`` is not a dict and costs ~50× more).
Thin events (``"object": "v2.core.event"``) are parsed with stripe-python's
``StripeClient.parse_event_notification_without_verification`` (the signature is checked by
:meth:`StripeAdapter.verify` beforehand); they carry no object, so they normalize to nothing
until the service fetches the related object (:mod:`adapters.stripe_api`) and turns it into a
snapshot event with :func:`snapshot_from_thin`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import stripe

from adapters.base import InboundRequest, Normalized, ProviderEvent
from adapters.stripe_normalize import normalize_stripe_event
from bridge.errors import PayloadError
from bridge.events import Source
from bridge.signing import verify_timestamped_hmac

__all__ = ["MAX_JSON_DEPTH", "SIGNATURE_HEADER", "StripeAdapter", "snapshot_from_thin"]

SIGNATURE_HEADER = "Stripe-Signature"
# orjson.dumps refuses nesting deeper than 254; a canonical event wraps the provider object
# two levels down (data.object) and payment summaries two more (…source_object), and the
# store re-serializes payloads: refuse anything that could not be written back.
MAX_JSON_DEPTH = 200
_NOT_OPENING = bytes(b for b in range(256) if b not in b"{[")  # see _load_object
_THIN_OBJECT = "v2.core.event"
# stripe-python needs a client to build an EventNotification; it is never used for requests.
_OFFLINE_CLIENT = stripe.StripeClient("sk_offline_parse_only")


def _json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (iterative: no recursion limit)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in node)
    return deepest


def _load_object(body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except (orjson.JSONDecodeError, RecursionError) as exc:  # orjson: depth > 1024, bad UTF-8
        raise PayloadError(f"body is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise PayloadError("body is not a JSON object")
    # Depth can only exceed the limit when the body opens that many containers: count them
    # in C first (one pass keeping only the brackets), walk the tree only for the rare body
    # that could be too deep.
    could_be_deep = len(body.translate(None, _NOT_OPENING)) > MAX_JSON_DEPTH
    if could_be_deep and _json_depth(payload) > MAX_JSON_DEPTH:
        raise PayloadError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return payload


def _required_str(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise PayloadError(f"event field {key!r} is missing or not a non-empty string")
    if "\x00" in value:  # PostgreSQL TEXT cannot hold NUL: refuse it here, not at commit
        raise PayloadError(f"event field {key!r} contains a NUL character")
    return value


def _parse_snapshot(payload: dict[str, Any]) -> ProviderEvent:
    event_id, event_type = _required_str(payload, "id"), _required_str(payload, "type")
    created = payload.get("created")
    # Bounded: the stores keep it in a 64-bit signed column; anything beyond would fail the
    # commit (a 500/503 the provider retries for days) instead of being refused here.
    if not isinstance(created, int) or isinstance(created, bool) or not 0 <= created < 2**63:
        raise PayloadError("event field 'created' is missing or not a unix timestamp")
    data = payload.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise PayloadError("event field 'data.object' is missing or not an object")
    previous = data.get("previous_attributes")
    if previous is not None and not isinstance(previous, dict):
        raise PayloadError("event field 'data.previous_attributes' is not an object")
    api_version = payload.get("api_version")
    return ProviderEvent(
        provider="stripe",
        id=event_id,
        type=event_type,
        created=created,
        payload=payload,
        api_version=api_version if isinstance(api_version, str) and api_version else None,
        livemode=payload.get("livemode") is True,
        shape="snapshot",
    )


def _iso_to_unix(text: str) -> int:
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        raise PayloadError(f"thin event 'created' is not an ISO timestamp: {text!r}") from None


def _parse_thin(payload: dict[str, Any]) -> ProviderEvent:
    for key in ("id", "type"):
        _required_str(payload, key)
    created = payload.get("created")
    if not isinstance(created, str):
        raise PayloadError("thin event field 'created' is missing or not a string")
    try:
        note = _OFFLINE_CLIENT.parse_event_notification_without_verification(orjson.dumps(payload))
    except (KeyError, ValueError, TypeError, AttributeError) as exc:  # e.g. a non-string context
        raise PayloadError(f"not a Stripe thin event notification: {exc}") from None
    return ProviderEvent(
        provider="stripe",
        id=note.id,
        type=note.type,
        created=_iso_to_unix(created),
        payload=payload,
        api_version=None,
        livemode=bool(note.livemode),
        shape="thin",
    )


def snapshot_from_thin(event: ProviderEvent, related_object: dict[str, Any]) -> ProviderEvent:
    """A snapshot-shaped event for a thin ``event`` whose related object was fetched: the type
    loses a ``v1.`` prefix (thin notifications of v1 events), ``data.object`` is the object.

    Raises:
        PayloadError: ``event`` is not a thin event.
    """
    if event.shape != "thin":
        raise PayloadError(f"event {event.id} is not a thin event")
    event_type = event.type.removeprefix("v1.")
    payload = {
        "id": event.id,
        "object": "event",
        "type": event_type,
        "created": event.created,
        "livemode": event.livemode,
        "api_version": None,
        "data": {"object": related_object},
    }
    return ProviderEvent(
        provider="stripe",
        id=event.id,
        type=event_type,
        created=event.created,
        payload=payload,
        livemode=event.livemode,
        shape="snapshot",
    )


class StripeAdapter:
    """Stripe webhooks → canonical events (docs/events.md). Pure: no I/O, clock injected through
    :attr:`InboundRequest.received_at`."""

    name: Source = "stripe"

    def __init__(self, signing_secrets: Sequence[str], *, tolerance_s: int = 300) -> None:
        """Raises ``ValueError`` when no (or an empty) signing secret is given."""
        if isinstance(signing_secrets, str):
            raise ValueError("signing_secrets must be a sequence of secrets, not one string")
        if not signing_secrets or any(not s for s in signing_secrets):
            raise ValueError("at least one non-empty Stripe signing secret is required")
        self._secrets = tuple(signing_secrets)
        self._tolerance_s = tolerance_s

    def verify(self, request: InboundRequest) -> None:
        """Check ``Stripe-Signature``: any ``v1`` matching any secret over the raw body, with a
        timestamp at most ``tolerance_s`` from ``request.received_at`` (past or future).

        Raises:
            SignatureError: missing, malformed, non-matching or stale/future signature.
        """
        verify_timestamped_hmac(
            request.body,
            request.headers.get(SIGNATURE_HEADER),
            self._secrets,
            tolerance_s=self._tolerance_s,
            now=request.received_at,
        )

    def parse(self, body: bytes) -> ProviderEvent:
        """Parse a snapshot or thin Stripe event.

        Raises:
            PayloadError: not UTF-8 JSON, not an object, nested deeper than
                :data:`MAX_JSON_DEPTH`, missing/non-string ``id``/``type``, missing integer
                ``created`` (or one outside 0 … 2**63-1), or (snapshot events) ``data.object``
                not an object.
        """
        payload = _load_object(body)
        if payload.get("object") == _THIN_OBJECT:
            return _parse_thin(payload)
        return _parse_snapshot(payload)

    def normalize(self, event: ProviderEvent) -> Normalized:
        """Canonical events of ``event`` (see :func:`normalize_stripe_event`); never raises."""
        return normalize_stripe_event(event)
