"""Row <-> record mapping of held PaymentIntent outcomes, the same on SQLite and PostgreSQL.

The ``deferred`` table holds one row per held outcome (``created_at`` is when it was held);
``invoice_payments`` the invoice payments an unlinked PaymentIntent may be matched against;
``pi_links`` / ``pi_standalone`` what is known about each PaymentIntent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from bridge.events import Event
from bridge.holds import Hold, NewHold
from bridge.normalized import InvoicePayment, PaymentKey

__all__ = [
    "HOLD_COLUMNS",
    "events_blob",
    "events_from_blob",
    "hold_from_row",
    "hold_params",
    "invoice_payment_params",
]

HOLD_COLUMNS = "id, payment_intent, livemode, events, created_at, decide_at, checks, match_key"


def events_blob(events: Sequence[Event]) -> bytes:
    return orjson.dumps([e.model_dump(mode="json") for e in events])


def events_from_blob(blob: bytes) -> list[Event]:
    return [Event.model_validate(e) for e in orjson.loads(blob)]


def _key_json(key: PaymentKey | None) -> str | None:
    if key is None:
        return None
    return orjson.dumps([key.outcome, key.customer, key.amount, key.currency]).decode()


def _key_from_json(text: str | None) -> PaymentKey | None:
    if not text:
        return None
    outcome, customer, amount, currency = orjson.loads(text)
    return PaymentKey(outcome, customer, int(amount), currency)


def hold_params(h: NewHold) -> tuple[Any, ...]:
    """(payment_intent, livemode, decide_at, next_check_at, events, created_at, match_key)."""
    d = h.deferred
    return (
        d.payment_intent,
        bool(d.livemode),
        h.decide_at,
        h.next_check_at,
        events_blob(d.events),
        h.held_at,
        _key_json(d.key),
    )


def hold_from_row(r: Sequence[Any] | Mapping[str, Any]) -> Hold:
    """A row selected with :data:`HOLD_COLUMNS`."""
    v = list(r.values()) if isinstance(r, Mapping) else list(r)
    return Hold(
        id=int(v[0]),
        payment_intent=v[1],
        livemode=bool(v[2]),
        events=events_from_blob(bytes(v[3])),
        held_at=float(v[4]),
        decide_at=float(v[5]),
        checks=int(v[6]),
        key=_key_from_json(v[7]),
    )


def invoice_payment_params(p: InvoicePayment, seen_at: float) -> tuple[Any, ...]:
    """(ref, invoice, outcome, customer, amount, currency, seen_at)."""
    k = p.key
    return (p.ref, p.invoice, k.outcome, k.customer, k.amount, k.currency, seen_at)
