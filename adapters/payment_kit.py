"""Payment Kit (ArcBlock) inbound: three body shapes, two signature schemes (docs/events.md).

Shapes, told apart by their own fields (a body with markers of two shapes is refused):

* ``"event"`` — a Payment Kit webhook event (``TEvent`` of ``@blocklet/payment-types``):
  ``id``, ``type``, ``created_at`` (ISO), ``data.object``, ``livemode``, ``api_version``,
  ``object_type``, ``object_id``, ``request``, ``pending_webhooks``; no ``created``.
* ``"eventbus"`` — an EventBus envelope (``@blocklet/sdk`` ``eventbus.publish``): ``id``,
  ``source``, ``type``, ``time`` (ISO), ``spec_version``, ``data: {type, object, …}``.
* ``"webhook"`` — a Blocklet Server webhook body: the envelope's ``data`` spread with
  ``$eventName`` and ``$sender``; no id, so the id is ``sha256:<hex of the raw body>``.
  Its time is the object's ``updated_at``/``created_at`` (0 when the object has neither).

Events keep their own type when it is in the catalog; ``payment.succeeded`` is derived from
``invoice.paid`` (``amount_paid`` > 0, key ``payment:{invoice}``) and from a
``payment_intent.succeeded`` that pays no invoice (key ``payment:{pi}``). A PaymentIntent
naming its invoice (``invoice_id``) produces only a :class:`Link`: the invoice events carry
that payment. Payment Kit amounts are decimal strings in the currency's smallest unit (token
amounts exceed 2**64), so the summary's ``amount`` is that string and ``currency`` the
``currency_id``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from adapters.base import InboundRequest, Link, Normalized, ProviderEvent
from bridge.blocklet import parse_public_key, verify_component
from bridge.catalog import is_known
from bridge.errors import ConfigError, PayloadError, SignatureError
from bridge.events import Event, Source
from bridge.signing import verify_timestamped_hmac

__all__ = ["PaymentKitAdapter"]

HMAC_HEADER = "x-webhook-signature"
COMPONENT_HEADER = "x-component-sig"
_EVENT_MARKERS = ("created_at", "pending_webhooks")
_EVENTBUS_MARKERS = ("spec_version", "time")
_WEBHOOK_MARKERS = ("$eventName", "$sender")
_DERIVED_ONLY = ("payment.succeeded", "payment.failed")
_MAX_TIME = 2**53
_MAX_DEPTH = 200


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def _unix(value: Any, field: str) -> int:
    """Unix seconds from an ISO-8601 string (naive means UTC) or a number, in
    ``[0, 2**53)`` (the store keeps it in a 64-bit column; JS in a double)."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            seconds = moment.timestamp()
    if seconds is None:
        raise PayloadError(f"{field} is not an ISO-8601 time")
    if not (math.isfinite(seconds) and 0 <= seconds < _MAX_TIME):
        raise PayloadError(f"{field} is out of range")
    return int(seconds)


def _depth_ok(value: Any) -> bool:
    """Iteratively check nesting: the event re-wraps the object three levels deeper and
    orjson refuses to serialize beyond 254."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > _MAX_DEPTH:
            return False
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return True


def _shape(body: Mapping[str, Any]) -> str:
    found = [
        name
        for name, markers in (
            ("event", _EVENT_MARKERS),
            ("eventbus", _EVENTBUS_MARKERS),
            ("webhook", _WEBHOOK_MARKERS),
        )
        if any(m in body for m in markers)
    ]
    if len(found) != 1:
        what = " and ".join(found) if found else "no"
        raise PayloadError(f"not a Payment Kit event: {what} shape markers")
    return found[0]


def _object_of(body: Mapping[str, Any], shape: str) -> Mapping[str, Any]:
    holder = body if shape == "webhook" else body.get("data")
    obj = holder.get("object") if isinstance(holder, Mapping) else None
    if not isinstance(obj, Mapping):
        where = "object" if shape == "webhook" else "data.object"
        raise PayloadError(f"{where} must be a JSON object")
    return obj


def _previous(body: Mapping[str, Any], shape: str) -> dict[str, Any] | None:
    holder = body if shape == "webhook" else body.get("data")
    prev = holder.get("previous_attributes") if isinstance(holder, Mapping) else None
    return dict(prev) if isinstance(prev, Mapping) and prev else None


def _string(value: Any) -> str | None:
    """A non-empty string without NUL (PostgreSQL TEXT refuses NUL), else ``None``."""
    return value if isinstance(value, str) and value and "\x00" not in value else None


def _created(body: Mapping[str, Any], shape: str, obj: Mapping[str, Any]) -> int:
    if shape == "event":
        return _unix(body.get("created_at"), "created_at")
    if shape == "eventbus":
        return _unix(body.get("time"), "time")
    for field in ("updated_at", "created_at"):
        if obj.get(field) is not None:
            return _unix(obj.get(field), f"object.{field}")
    return 0


def _parse(raw: bytes) -> ProviderEvent:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise PayloadError("body is not valid JSON") from None
    if not isinstance(body, dict):
        raise PayloadError("body must be a JSON object")
    if not _depth_ok(body):
        raise PayloadError(f"body nests deeper than {_MAX_DEPTH} levels")
    shape = _shape(body)
    type_ = _string(body.get("$eventName" if shape == "webhook" else "type"))
    if type_ is None:
        raise PayloadError("event type must be a non-empty string")
    if shape == "webhook":
        event_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    else:
        event_id = _string(body.get("id")) or ""
        if not event_id:
            raise PayloadError("event id must be a non-empty string")
    obj = _object_of(body, shape)
    livemode = body.get("livemode", obj.get("livemode"))
    return ProviderEvent(
        provider="payment_kit",
        id=event_id,
        type=type_,
        created=_created(body, shape, obj),
        payload=body,
        api_version=_string(body.get("api_version")),
        livemode=livemode is True,
        shape=shape,
    )


def _amount_positive(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value > 0
    # No int(): a 5000-digit string would exceed Python's int-conversion limit.
    return isinstance(value, str) and value.isascii() and value.isdigit() and value.strip("0") != ""


def _products(obj: Mapping[str, Any]) -> list[str]:
    lines = obj.get("lines")
    if isinstance(lines, Mapping):
        lines = lines.get("data")
    found: dict[str, None] = {}
    for line in lines if isinstance(lines, list) else []:
        price = line.get("price") if isinstance(line, Mapping) else None
        product = price.get("product_id") if isinstance(price, Mapping) else None
        if isinstance(product, str):
            found[product] = None
    return list(found)


class _Ctx:
    """One event being normalized: its parts and an :class:`Event` factory."""

    def __init__(self, event: ProviderEvent) -> None:
        self.event = event
        body = event.payload
        self.obj = _object_of(body, event.shape)
        self.previous = _previous(body, event.shape)
        holder = body if event.shape != "eventbus" else {**body["data"], **body}
        self.object_type = _string(holder.get("object_type"))
        self.object_id = _string(holder.get("object_id")) or _string(self.obj.get("id"))
        request = body.get("request")
        self.request = dict(request) if isinstance(request, Mapping) else None
        self.source: Source = "payment_kit"

    def make(self, type_: str, key: str, data_object: Mapping[str, Any], **kw: Any) -> Event:
        e = self.event
        return Event.make(
            type=type_,
            dedupe_key=key,
            source=self.source,
            source_event_id=e.id,
            created=e.created,
            data_object=dict(data_object),
            api_version=e.api_version,
            livemode=e.livemode,
            request=self.request,
            **kw,
        )

    def passthrough(self) -> Event:
        return self.make(
            self.event.type,
            f"payment_kit:{self.event.id}",
            self.obj,
            previous_attributes=self.previous,
            object_type=self.object_type,
            object_id=self.object_id,
        )

    def payment(self, object_type: str, object_id: str, summary: dict[str, Any]) -> Event:
        key = f"payment:{object_id}"
        return self.make(
            "payment.succeeded", key, summary, object_type=object_type, object_id=object_id
        )

    def summary(self, *, amount: Any, invoice: str | None, pi: str | None) -> dict[str, Any]:
        sub = _string(self.obj.get("subscription_id"))
        return {
            "kind": "subscription" if sub else "one_time",
            "customer": _string(self.obj.get("customer_id")),
            "amount": amount,
            "currency": _string(self.obj.get("currency_id")),
            "invoice": invoice,
            "payment_intent": pi,
            "subscription": sub,
            "products": _products(self.obj),
            "source_object": dict(self.obj),
        }


def _invoice_paid(c: _Ctx) -> Normalized:
    invoice = _string(c.obj.get("id")) or c.object_id or c.event.id
    pi = _string(c.obj.get("payment_intent_id"))
    out = Normalized(events=[c.passthrough()])
    if pi:
        out.links.append(Link(payment_intent=pi, invoice=invoice))
    amount = c.obj.get("amount_paid")
    if c.obj.get("status", "paid") == "paid" and _amount_positive(amount):
        summary = c.summary(amount=amount, invoice=invoice, pi=pi)
        out.events.append(c.payment("invoice", invoice, summary))
    return out


def _payment_intent(c: _Ctx) -> Normalized:
    pi = _string(c.obj.get("id")) or c.object_id or c.event.id
    invoice = _string(c.obj.get("invoice_id"))
    if invoice:  # the invoice events cover this payment
        return Normalized(
            links=[Link(payment_intent=pi, invoice=invoice)],
            ignored_reason=f"payment intent {pi} pays invoice {invoice}",
        )
    out = Normalized(events=[c.passthrough()])
    if c.event.type == "payment_intent.succeeded":
        amount = c.obj.get("amount_received") or c.obj.get("amount")
        if _amount_positive(amount):
            summary = c.summary(amount=amount, invoice=None, pi=pi)
            out.events.append(c.payment("payment_intent", pi, summary))
    return out


def _normalize(event: ProviderEvent) -> Normalized:
    if event.type in _DERIVED_ONLY:
        return Normalized(ignored_reason=f"{event.type} is derived by paybridge, not accepted")
    if not is_known(event.type):
        return Normalized(ignored_reason=f"{event.type} is not in the paybridge catalog")
    c = _Ctx(event)
    if event.type == "invoice.paid":
        return _invoice_paid(c)
    if event.type in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        return _payment_intent(c)
    return Normalized(events=[c.passthrough()])


class PaymentKitAdapter:
    """Payment Kit ingress: ``X-Webhook-Signature`` (HMAC, Blocklet Server webhooks) and/or
    Blocklet component signatures (``x-component-sig``, Payment Kit's own webhook calls).
    Either scheme is enough when both are configured.

    Raises:
        ConfigError: neither ``signing_secrets`` nor ``app_public_key`` is given, or the
            public key is not ``0x`` + 32 bytes of hex.
    """

    name: Source = "payment_kit"

    def __init__(
        self,
        signing_secrets: Sequence[str] = (),
        *,
        app_public_key: str | None = None,
        tolerance_s: int = 300,
    ) -> None:
        if isinstance(signing_secrets, str):
            raise TypeError("signing_secrets must be a sequence of strings")
        self._secrets = [s for s in signing_secrets if s]
        self._public_key = parse_public_key(app_public_key) if app_public_key else None
        if not self._secrets and self._public_key is None:
            raise ConfigError("needs signing_secrets or app_public_key", key="sources.payment_kit")
        self._tolerance_s = tolerance_s

    def verify(self, request: InboundRequest) -> None:
        """Accept the request when a configured scheme verifies it.

        Raises:
            SignatureError: no signature header of a configured scheme (400); an HMAC header
                that does not verify or is outside ``tolerance_s`` (400); a component
                signature that is expired or does not verify (401), or a body that is not
                JSON when a component signature must be checked (400).
        """
        failures: list[SignatureError] = []
        hmac_header = _header(request.headers, HMAC_HEADER)
        if self._secrets and hmac_header:
            try:
                verify_timestamped_hmac(
                    request.body,
                    hmac_header,
                    self._secrets,
                    tolerance_s=self._tolerance_s,
                    now=request.received_at,
                )
                return
            except SignatureError as exc:
                failures.append(exc)
        if self._public_key is not None and _header(request.headers, COMPONENT_HEADER):
            try:
                self._verify_component(request)
                return
            except SignatureError as exc:
                failures.append(exc)
        if len(failures) == 1:
            raise failures[0]
        if failures:
            raise SignatureError("; ".join(str(f) for f in failures), status=401)
        raise SignatureError("missing signature: " + self._expected_headers(), status=400)

    def _expected_headers(self) -> str:
        names = (["X-Webhook-Signature"] if self._secrets else []) + (
            ["x-component-sig"] if self._public_key is not None else []
        )
        return " or ".join(names)

    def _verify_component(self, request: InboundRequest) -> None:
        assert self._public_key is not None
        try:
            # The stdlib parser keeps what JSON.parse keeps (ints beyond 64 bits, lone
            # surrogates); bridge.blocklet renders them as JS would.
            body = json.loads(request.body, parse_constant=_reject) if request.body else None
        except (ValueError, RecursionError):  # RecursionError: deeply nested, unauthenticated
            raise SignatureError("body is not JSON: cannot check its signature") from None
        try:
            verify_component(
                request.headers,
                body=body,
                method=request.method,
                path=request.path.split("?", 1)[0],
                query=request.query,
                public_key=self._public_key,
                now=request.received_at,
            )
        except RecursionError:  # rendering the signed text of a deeply nested body
            raise SignatureError("body nested too deeply to check its signature") from None

    def parse(self, body: bytes) -> ProviderEvent:
        """Parse one of the three shapes.

        Raises:
            PayloadError: not JSON, not an object, no or several shape markers, a missing or
                non-string id/type, ``data.object`` (``object``) not an object, or a bad time.
        """
        return _parse(body)

    def normalize(self, event: ProviderEvent) -> Normalized:
        """Map a parsed Payment Kit event to canonical events (pure; never raises for an
        event :meth:`parse` returned)."""
        return _normalize(event)


def _reject(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")
