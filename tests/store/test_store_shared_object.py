"""One copy of the provider object per request: event bodies that embed the request's object
are stored with a mark instead and read back byte for byte (both stores)."""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson
import pytest

from adapters.base import Normalized
from bridge.events import Event
from bridge.store.base import InboxRecord, Store
from bridge.store.bodies import OBJECT_MARK, event_from_stored, object_json, stored_body
from bridge.store.postgres import PostgresStore
from bridge.store.sqlite import SqliteStore
from tests.store.store_factories import LEASE_S, NOW, WINDOW_S, endpoint

OBJ: dict[str, Any] = {
    "id": "sub_shared",
    "object": "subscription",
    "status": "active",
    "amount": 1.5,
    "metadata": {f"k{i}": f"välue {i} ✓ \u0001" for i in range(20)},
}


def _request(obj: dict[str, Any], provider_event_id: str = "evt_shared") -> InboxRecord:
    raw = orjson.dumps({"id": provider_event_id, "object": "event", "data": {"object": obj}})
    parsed = orjson.loads(raw)
    return InboxRecord(
        "stripe", provider_event_id, "customer.subscription.created", NOW, raw, object_json(parsed)
    )


def _event(type_: str, obj: dict[str, Any], **kw: Any) -> Event:
    return Event.make(
        type=type_,
        dedupe_key=f"stripe:{type_}:{obj.get('id', 'summary')}",
        source=kw.pop("source", "stripe"),
        source_event_id="evt_shared",
        created=int(NOW),
        data_object=obj,
        object_type="subscription",
        **kw,
    )


def test_shared_object_body_round_trips_exactly() -> None:
    rec = _request(OBJ)
    assert rec.object_json is not None and OBJECT_MARK not in rec.object_json
    ev = _event("customer.subscription.started", OBJ, previous_attributes={"status": "x"})
    body, of = stored_body(ev, rec)
    assert of == "evt_shared" and rec.object_json not in body and len(body) < 500
    assert event_from_stored(body, rec.payload).to_json() == ev.to_json()


def test_shared_object_only_when_the_body_holds_this_requests_object() -> None:
    rec = _request(OBJ)
    changed = _event("customer.subscription.created", {**OBJ, "status": "canceled"})
    assert stored_body(changed, rec) == (changed.to_json(), None)
    other_source = _event("customer.subscription.created", OBJ, source="payment_kit")
    assert stored_body(other_source, rec) == (other_source.to_json(), None)
    small = {"id": "sub_small", "object": "subscription"}
    assert _request(small).object_json is None  # not worth a look-up
    assert stored_body(_event("customer.subscription.created", OBJ), None)[1] is None
    # a summary that carries the object deeper (payment.succeeded's source_object) shares it too
    summary = {"kind": "invoice", "amount": 5, "source_object": OBJ}
    pay = _event("payment.succeeded", summary)
    body, of = stored_body(pay, rec)
    assert of == "evt_shared" and event_from_stored(body, rec.payload).to_json() == pay.to_json()


def test_event_written_around_the_requests_object_json() -> None:
    """Event.share_object: the body is written around the request's object bytes (not
    serialized again), byte for byte what it would be otherwise, and stored without them."""
    parsed = orjson.loads(_request(OBJ).payload)
    rec = InboxRecord(
        "stripe",
        "evt_shared",
        "customer.subscription.created",
        NOW,
        _request(OBJ).payload,
        object_json(parsed),
    )
    assert rec.object_json is not None
    obj = parsed["data"]["object"]
    plain = _event("customer.subscription.started", obj, previous_attributes={"status": "x"})
    ev = _event("customer.subscription.started", obj, previous_attributes={"status": "x"})
    assert ev.share_object(obj, rec.object_json)
    assert ev.to_json() == plain.to_json() and ev == plain
    assert ev.model_dump() == plain.model_dump()
    body, of = stored_body(ev, rec)
    assert (body, of) == (stored_body(plain, rec)[0], "evt_shared") and body.count(OBJECT_MARK) == 1
    back = event_from_stored(body, rec.payload)
    assert back == plain and back.to_json() == plain.to_json()
    # a copy of the object, or an event already written, is left as it is
    copy = _event("customer.subscription.created", dict(obj))
    assert not copy.share_object(obj, rec.object_json) and copy.shared_object is None
    assert not ev.share_object(obj, rec.object_json)
    # another request's bytes: found by search, as for any event
    other = _request(OBJ, "evt_other")
    assert stored_body(ev, other)[1] == "evt_other"


def test_shared_object_missing_from_its_inbox_row_is_an_error() -> None:
    body, _ = stored_body(_event("customer.subscription.created", OBJ), _request(OBJ))
    with pytest.raises(ValueError, match="without its object"):
        event_from_stored(body, b'{"id": "evt_shared", "data": {}}')


async def _raw_body(store: Store, event_id: str) -> tuple[bytes, str | None]:
    if isinstance(store, SqliteStore):
        conn = sqlite3.connect(store.path)
        try:
            row = conn.execute(
                "SELECT body, object_of FROM events WHERE id = ?", (event_id,)
            ).fetchone()
        finally:
            conn.close()
        return bytes(row[0]), row[1]
    assert isinstance(store, PostgresStore)
    async with store._db.conn() as conn:
        row = await conn.fetchrow("SELECT body, object_of FROM events WHERE id = $1", event_id)
    return bytes(row["body"]), row["object_of"]


async def test_store_keeps_one_copy_of_the_object_and_reads_events_back_whole(
    store: Store,
) -> None:
    await store.put_subscriber(endpoint("we_1"))
    created = _event("customer.subscription.created", OBJ)
    started = _event("customer.subscription.started", OBJ)
    rec = _request(OBJ)
    result = await store.ingest(
        rec,
        Normalized(events=[created, started]),
        now=NOW,
        correlation_window_s=WINDOW_S,
        owner="a",
        lease_s=LEASE_S,
        local_handlers=(),
    )
    assert [e.id for e in result.events] == [created.id, started.id]
    assert rec.object_json is not None
    for ev in (created, started):
        body, of = await _raw_body(store, ev.id)
        assert of == "evt_shared" and rec.object_json not in body
    # every read path gives the whole event back
    assert (await store.get_event(created.id)) == created
    page = await store.list_events(limit=10)
    assert {e.to_json() for e in page.items} == {created.to_json(), started.to_json()}
    typed = await store.list_events(type="customer.subscription.started")
    assert [e.to_json() for e in typed.items] == [started.to_json()]
    later = NOW + LEASE_S + 1  # the ingest lease ran out: the deliveries are claimable
    claimed = await store.claim_due(now=later, owner="b", lease_s=LEASE_S, limit=10, handlers=())
    assert {d.event.to_json() for d in claimed} == {created.to_json(), started.to_json()}
    assert len(await store.resend(started.id, now=later)) == 1


async def test_store_events_written_before_the_shared_object_still_read(
    store: Store,
) -> None:
    """Rows with a whole body (no object_of, e.g. written by an older version) read as is."""
    ev = _event("customer.subscription.created", OBJ)
    plain = InboxRecord("stripe", "evt_plain", ev.type, NOW, b"{}")  # no object_json
    await store.ingest(
        plain,
        Normalized(events=[ev]),
        now=NOW,
        correlation_window_s=WINDOW_S,
        owner="a",
        lease_s=LEASE_S,
        local_handlers=(),
    )
    assert await _raw_body(store, ev.id) == (ev.to_json(), None)
    assert (await store.get_event(ev.id)) == ev
