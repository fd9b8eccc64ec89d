"""Factories for the store tests: canonical events, inbox records, subscribers, one ingest."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson

from bridge.events import Event
from bridge.normalized import Deferred, InvoicePayment, Link, Normalized, PaymentKey
from bridge.store.base import InboxRecord, IngestResult, Store, Subscriber
from bridge.store.postgres import PostgresStore

__all__ = [
    "LEASE_S",
    "NOW",
    "WINDOW_S",
    "FreshDatabase",
    "OpenStore",
    "endpoint",
    "event",
    "handler",
    "ingest",
    "invoice_paid",
    "link",
    "normalized",
    "pay_key",
    "pi_decision",
    "record",
]

NOW = 1_750_000_000.0
LEASE_S = 30.0
WINDOW_S = 60.0

# The ``open_pg_store`` fixture: opens another PostgresStore ("another instance").
OpenStore = Callable[..., Awaitable[PostgresStore]]
# The ``fresh_database`` fixture: creates an empty database, returns its URL.
FreshDatabase = Callable[[], Awaitable[str]]


def event(key: str, type: str = "checkout.session.completed", *, livemode: bool = False) -> Event:
    """A canonical event naming the fact ``key`` (its id derives from it)."""
    return Event.make(
        type=type,
        dedupe_key=f"stripe:{type}:{key}",
        source="stripe",
        source_event_id=f"evt_{key}",
        created=int(NOW),
        data_object={"id": key, "object": type.split(".")[0], "amount": 1200, "note": "é ✓"},
        object_type=type.split(".")[0],
        object_id=key,
        livemode=livemode,
    )


def record(provider_event_id: str, type: str = "checkout.session.completed") -> InboxRecord:
    """An accepted Stripe request."""
    body = orjson.dumps({"id": provider_event_id, "object": "event", "type": type})
    return InboxRecord("stripe", provider_event_id, type, NOW, body)


def normalized(*events: Event) -> Normalized:
    """A provider event that means ``events``."""
    return Normalized(events=list(events))


def link(pi: str, invoice: str = "in_1") -> Normalized:
    """A provider event that tells ``pi`` pays ``invoice``."""
    return Normalized(links=[Link(pi, invoice)])


def pay_key(amount: int = 1200, outcome: str = "succeeded", customer: str = "cus_1") -> PaymentKey:
    """What a payment is matched on: ``customer`` paid ``amount`` USD cents."""
    assert outcome in ("succeeded", "failed")
    return PaymentKey(outcome, customer, amount, "usd")  # type: ignore[arg-type]


def pi_decision(pi: str, *events: Event, key: PaymentKey | None = None) -> Normalized:
    """A PaymentIntent outcome to emit only if ``pi`` pays no invoice."""
    evs = events or (event(pi, "payment_intent.succeeded"),)
    return Normalized(deferred=[Deferred(pi, tuple(evs), livemode=evs[0].livemode, key=key)])


def invoice_paid(invoice: str, key: PaymentKey, *, pi: str | None = None) -> Normalized:
    """An invoice event reporting a payment of ``key``; naming ``pi`` links it."""
    fact = event(invoice, "invoice.paid")
    links = [Link(pi, invoice)] if pi else []
    payments = [] if pi else [InvoicePayment(invoice, f"payment:{invoice}", key)]
    return Normalized(events=[fact], links=links, invoice_payments=payments)


def endpoint(sid: str, events: Sequence[str] = ("*",), **changes: Any) -> Subscriber:
    """An enabled webhook endpoint; ``changes`` override any field."""
    sub = Subscriber(
        id=sid,
        kind="endpoint",
        enabled_events=list(events),
        url=f"https://example.com/hooks/{sid}",
        secret="whsec_" + "a" * 32,
        created_at=NOW,
        updated_at=NOW,
    )
    return dataclasses.replace(sub, **changes)


def handler(name: str, events: Sequence[str] = ("*",)) -> Subscriber:
    """A durable bus handler subscriber."""
    return Subscriber(
        id=f"handler:{name}",
        kind="handler",
        enabled_events=list(events),
        created_via="code",
        created_at=NOW,
        updated_at=NOW,
    )


async def ingest(
    store: Store,
    provider_event_id: str,
    n: Normalized,
    *,
    now: float = NOW,
    window_s: float = WINDOW_S,
    owner: str = "instance-a",
    local: Sequence[str] = (),
    lookups: bool = False,
) -> IngestResult:
    """Ingest ``n`` as the meaning of provider event ``provider_event_id``."""
    return await store.ingest(
        record(provider_event_id),
        n,
        now=now,
        correlation_window_s=window_s,
        owner=owner,
        lease_s=LEASE_S,
        local_handlers=local,
        lookups=lookups,
    )
