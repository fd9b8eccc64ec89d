"""SQLite store, PaymentIntent correlation inside an ingest transaction: links (which drop the
held decisions they answer), standalone PaymentIntents (which release them at once) and new
held decisions."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

from adapters.base import Deferred, Normalized
from bridge.events import Event

__all__ = ["apply_deferred", "apply_links", "events_blob", "events_from_blob"]

_Conn = sqlite3.Connection


def events_blob(events: Sequence[Event]) -> bytes:
    """The held events as stored in ``deferred.events``."""
    return orjson.dumps([e.model_dump(mode="json") for e in events])


def events_from_blob(blob: bytes) -> list[Event]:
    return [Event.model_validate(e) for e in orjson.loads(blob)]


def apply_deferred(
    conn: _Conn, deferred: Sequence[Deferred], now: float, window_s: float
) -> tuple[list[Event], int, int]:
    """Hold, emit or drop each PaymentIntent decision: ``(emit now, held, dropped)``."""
    emit: list[Event] = []
    held = dropped = 0
    for d in deferred:
        if conn.execute(
            "SELECT 1 FROM pi_links WHERE payment_intent = ?", (d.payment_intent,)
        ).fetchone():
            dropped += 1
        elif (
            window_s <= 0
            or conn.execute(
                "SELECT 1 FROM pi_standalone WHERE payment_intent = ?", (d.payment_intent,)
            ).fetchone()
        ):
            emit.extend(d.events)
        else:
            conn.execute(
                "INSERT INTO deferred (payment_intent, livemode, decide_at, events,"
                " created_at) VALUES (?, ?, ?, ?, ?)",
                (d.payment_intent, int(d.livemode), now + window_s, events_blob(d.events), now),
            )
            held += 1
    return emit, held, dropped


def apply_links(conn: _Conn, n: Normalized) -> tuple[list[Event], int]:
    """Store links (dropping held decisions they answer) and standalone PIs (releasing held
    decisions at once): ``(released events, dropped)``."""
    dropped = 0
    for link in n.links:
        conn.execute(
            "INSERT OR IGNORE INTO pi_links (payment_intent, invoice) VALUES (?, ?)",
            (link.payment_intent, link.invoice),
        )
        dropped += conn.execute(
            "DELETE FROM deferred WHERE payment_intent = ?", (link.payment_intent,)
        ).rowcount
    released: list[Event] = []
    for pi in n.standalone_payment_intents:
        conn.execute("INSERT OR IGNORE INTO pi_standalone (payment_intent) VALUES (?)", (pi,))
        if conn.execute("SELECT 1 FROM pi_links WHERE payment_intent = ?", (pi,)).fetchone():
            continue
        for (blob,) in conn.execute(
            "DELETE FROM deferred WHERE payment_intent = ? RETURNING events", (pi,)
        ).fetchall():
            released.extend(events_from_blob(blob))
    return released, dropped
