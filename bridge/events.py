"""The canonical event: the one JSON shape paybridge delivers everywhere (docs/events.md)."""

from __future__ import annotations

import hashlib
from functools import cached_property
from typing import Any, Literal, NamedTuple

import orjson
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["OBJECT_MARK", "Event", "EventRefs", "Source", "event_id_for", "event_refs"]

Source = Literal["stripe", "payment_kit"]

# Stands for ``data.object`` in a body kept without it (:attr:`Event.shared_object`): a byte
# orjson never writes (it escapes control characters), so replacing it is exact both ways.
OBJECT_MARK = b"\x01"


def event_id_for(event_type: str, dedupe_key: str) -> str:
    """The deterministic canonical id of the fact ``(event_type, dedupe_key)``: re-ingesting the
    same provider event always yields the same id, which receivers see as ``webhook-id``.

    A fact is a type *and* a key: some facts of different types share a key
    (``customer.subscription.updated`` and ``.recovered`` are both ``stripe:{evt}``)."""
    digest = hashlib.sha256(f"{event_type}\n{dedupe_key}".encode()).hexdigest()
    return "evt_" + digest[:32]


class Event(BaseModel):
    """A canonical event. ``(type, dedupe_key)`` names the real-world fact; the store keeps one
    event per fact, so each fact is emitted exactly once."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    object: Literal["event"] = "event"
    type: str
    api_version: str | None = None
    livemode: bool = False
    created: int
    source: Source
    source_event_id: str
    object_type: str | None = None
    object_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    request: dict[str, Any] = Field(default_factory=lambda: {"id": None, "idempotency_key": None})
    dedupe_key: str

    @classmethod
    def make(
        cls,
        *,
        type: str,
        dedupe_key: str,
        source: Source,
        source_event_id: str,
        created: int,
        data_object: dict[str, Any],
        previous_attributes: dict[str, Any] | None = None,
        object_type: str | None = None,
        object_id: str | None = None,
        api_version: str | None = None,
        livemode: bool = False,
        request: dict[str, Any] | None = None,
    ) -> Event:
        """Build an event whose id is derived from ``(type, dedupe_key)``."""
        data: dict[str, Any] = {"object": data_object}
        if previous_attributes:
            data["previous_attributes"] = previous_attributes
        return cls(
            id=event_id_for(type, dedupe_key),
            type=type,
            api_version=api_version,
            livemode=livemode,
            created=created,
            source=source,
            source_event_id=source_event_id,
            object_type=object_type,
            object_id=object_id,
            data=data,
            request=request or {"id": None, "idempotency_key": None},
            dedupe_key=dedupe_key,
        )

    def to_json(self) -> bytes:
        """The wire JSON (compact UTF-8), as delivered to endpoints; computed once."""
        return self._json

    def share_object(self, obj: Any, obj_json: bytes) -> bool:
        """``obj_json`` is ``orjson.dumps(obj)``, already written for the provider request
        ``obj`` came in. When this event's ``data.object`` is that very object (not a copy),
        its JSON is written around those bytes instead of serializing the object again, and
        :attr:`shared_object` lets a store keep the body without it. Returns whether it was."""
        if (
            self.data.get("object") is not obj
            or "_json" in self.__dict__
            or self.__dict__.get("shared_object") is not None
        ):
            return False
        marked = orjson.dumps(self._wire({**self.data, "object": orjson.Fragment(OBJECT_MARK)}))
        # A cached_property slot: pydantic leaves it out of equality and copies. The whole
        # wire JSON is put together from it when first asked for (deliveries), not here: most
        # events are only stored.
        self.__dict__["shared_object"] = (marked, obj_json)
        return True

    @cached_property
    def shared_object(self) -> tuple[bytes, bytes] | None:
        """``(body with data.object replaced by OBJECT_MARK, the object's JSON)`` after
        :meth:`share_object`, else None."""
        return None

    @cached_property
    def _json(self) -> bytes:
        shared: tuple[bytes, bytes] | None = self.__dict__.get("shared_object")
        if shared is not None:
            marked, obj_json = shared
            return marked.replace(OBJECT_MARK, obj_json)
        # Every field is JSON-native already (``data`` comes from parsed JSON), so orjson
        # writes the fields directly: the same bytes as model_dump(mode="json"), a lot faster.
        return orjson.dumps(self._wire(self.data))

    def _wire(self, data: dict[str, Any]) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _FIELDS}
        out["data"] = data
        return out

    @classmethod
    def from_wire(cls, raw: bytes) -> Event:
        """:meth:`from_json` of bytes written by :meth:`to_json` (a stored body): they are
        kept as the event's wire JSON instead of being written again."""
        event = cls.from_json(raw)
        event.__dict__["_json"] = raw
        return event

    @classmethod
    def from_json(cls, raw: bytes | str) -> Event:
        """Parse wire JSON produced by :meth:`to_json`."""
        return cls.model_validate(orjson.loads(raw))


_FIELDS = tuple(Event.model_fields)


class EventRefs(NamedTuple):
    """The ids an operator looks an event up by (the store indexes them)."""

    customer: str | None
    subscription: str | None
    invoice: str | None


_REF_MAX = 255


def _ref(value: Any) -> str | None:
    """An id given as a string or as an expanded object (``{"id": …}``)."""
    if isinstance(value, dict):
        value = value.get("id")
    return value[:_REF_MAX] if isinstance(value, str) and value else None


def _first_ref(obj: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        found = _ref(obj.get(key))
        if found is not None:
            return found
    return None


def event_refs(event: Event) -> EventRefs:
    """The customer, subscription and invoice an event is about, read from its ``object_type``
    / ``object_id`` and its object's own fields (Stripe's ``customer``, Payment Kit's
    ``customer_id``, an invoice's ``parent.subscription_details.subscription``, a payment
    summary's ``invoice``)."""
    obj = event.data.get("object")
    if not isinstance(obj, dict):
        obj = {}
    own = _ref(event.object_id)
    customer = own if event.object_type == "customer" else None
    customer = customer or _first_ref(obj, "customer", "customer_id")
    subscription = own if event.object_type == "subscription" else None
    if subscription is None:
        parent = obj.get("parent")
        details = parent.get("subscription_details") if isinstance(parent, dict) else None
        subscription = _first_ref(obj, "subscription", "subscription_id") or (
            _ref(details.get("subscription")) if isinstance(details, dict) else None
        )
    invoice = own if event.object_type == "invoice" else None
    invoice = invoice or _first_ref(obj, "invoice", "invoice_id")
    return EventRefs(customer, subscription, invoice)
