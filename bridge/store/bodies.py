"""One copy of the provider object per request: event bodies as stored, and rebuilt on read."""

from __future__ import annotations

from typing import Any

import orjson

from bridge.events import OBJECT_MARK, Event
from bridge.store.base import InboxRecord
from bridge.store.compression import unpacked

__all__ = ["OBJECT_MARK", "event_from_stored", "object_json", "stored_body"]

# Most canonical events carry the provider's object as data.object (a subscription event and
# the "started" derived from it: twice the same ~3 KB). The stores keep the raw request in the
# inbox anyway, so an event body is stored with every copy of that object's JSON replaced by
# OBJECT_MARK and a reference to its inbox row, and rebuilt on read: less to write, copy and
# checkpoint. A byte orjson never writes (it escapes control characters), so the replacement
# is exact both ways.
_MIN_SHARED = 256  # smaller objects are not worth a look-up


def object_json(payload: Any) -> bytes | None:
    """The orjson bytes of ``payload["data"]["object"]`` (a parsed provider request), or None
    when there is no such object or it is small. Deterministic: the same parsed JSON always
    gives the same bytes, which is what lets :func:`event_from_stored` rebuild a body."""
    data = payload.get("data") if isinstance(payload, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return None
    out = orjson.dumps(obj)
    return out if len(out) >= _MIN_SHARED else None


def stored_body(event: Event, record: InboxRecord | None) -> tuple[bytes, str | None]:
    """What to store for ``event`` ingested with ``record``: ``(body, object_of)``, where
    ``object_of`` names the inbox row (same provider) whose object the body refers to."""
    if record is None or record.object_json is None or event.source != record.provider:
        return event.to_json(), None
    shared = event.shared_object
    if shared is not None and shared[1] is record.object_json:  # Event.share_object
        return shared[0], record.provider_event_id
    body = event.to_json()
    if record.object_json not in body:  # not this request's object, or a changed copy of it
        return body, None
    return body.replace(record.object_json, OBJECT_MARK), record.provider_event_id


def event_from_stored(body: bytes, inbox_payload: bytes | None) -> Event:
    """The event of a stored ``body``; ``inbox_payload``: the raw request of the inbox row the
    body refers to (None when it refers to none).

    Raises:
        ValueError: the body refers to an object its inbox row does not have (a corrupt row).
    """
    body = bytes(body)
    if inbox_payload is not None and OBJECT_MARK in body:
        shared = object_json(orjson.loads(unpacked(inbox_payload)))
        if shared is None:
            raise ValueError("stored event refers to an inbox row without its object")
        body = body.replace(OBJECT_MARK, shared)
    return Event.from_wire(body)
