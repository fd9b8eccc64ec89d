"""PostgreSQL store, PaymentIntent correlation inside an ingest transaction: links (which
drop the held decisions they answer), standalone PaymentIntents (which release them at once)
and new held decisions. The caller holds the PaymentIntents' advisory locks (:func:`lock`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from adapters.base import Deferred, Normalized
from bridge.events import Event

__all__ = ["apply_deferred", "apply_links", "events_blob", "events_from_blob", "lock"]

_LOCK_KEYS = (
    "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(p, 0) AS k"
    " FROM unnest($1::text[]) AS p ORDER BY k) AS s"
)


async def lock(conn: Any, keys: Sequence[str]) -> None:
    """Take transaction advisory locks on ``keys`` in one fixed (sorted) order."""
    if keys:
        await conn.execute(_LOCK_KEYS, list(keys))


def events_blob(events: Sequence[Event]) -> bytes:
    return orjson.dumps([e.model_dump(mode="json") for e in events])


def events_from_blob(blob: bytes) -> list[Event]:
    return [Event.model_validate(e) for e in orjson.loads(blob)]


async def apply_deferred(
    conn: Any, deferred: Sequence[Deferred], now: float, window_s: float
) -> tuple[list[Event], int, int]:
    emit: list[Event] = []
    held = dropped = 0
    for d in deferred:
        pi = d.payment_intent
        if await conn.fetchval("SELECT 1 FROM pi_links WHERE payment_intent = $1", pi):
            dropped += 1
        elif window_s <= 0 or await conn.fetchval(
            "SELECT 1 FROM pi_standalone WHERE payment_intent = $1", pi
        ):
            emit.extend(d.events)
        else:
            await conn.execute(
                "INSERT INTO deferred (payment_intent, livemode, decide_at, events,"
                " created_at) VALUES ($1, $2, $3, $4, $5)",
                pi,
                bool(d.livemode),
                now + window_s,
                events_blob(d.events),
                now,
            )
            held += 1
    return emit, held, dropped


async def apply_links(conn: Any, n: Normalized) -> tuple[list[Event], int]:
    """Store links (dropping held decisions they answer) and standalone PIs (releasing
    held decisions at once). The caller holds the PI locks."""
    dropped = 0
    for link in n.links:
        await conn.execute(
            "INSERT INTO pi_links (payment_intent, invoice) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            link.payment_intent,
            link.invoice,
        )
        gone = await conn.fetch(
            "DELETE FROM deferred WHERE payment_intent = $1 RETURNING id", link.payment_intent
        )
        dropped += len(gone)
    released: list[Event] = []
    for pi in n.standalone_payment_intents:
        await conn.execute(
            "INSERT INTO pi_standalone (payment_intent) VALUES ($1) ON CONFLICT DO NOTHING", pi
        )
        if await conn.fetchval("SELECT 1 FROM pi_links WHERE payment_intent = $1", pi):
            continue
        for r in await conn.fetch(
            "DELETE FROM deferred WHERE payment_intent = $1 RETURNING events", pi
        ):
            released.extend(events_from_blob(r["events"]))
    return released, dropped
