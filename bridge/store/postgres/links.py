"""PostgreSQL store, the PaymentIntent rule inside an ingest transaction: reads what
:func:`bridge.holds.plan_ingest` needs to know and writes what it decided (links, standalone
PaymentIntents, held outcomes dropped, released or added, invoice payments). The caller holds
the PaymentIntents' advisory locks (:func:`lock`), so a link and a held outcome of one PI
never miss each other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.holds import HeldRow, IngestPlan, Known, answered_payment_intents, payment_intents
from bridge.normalized import Normalized
from bridge.store.hold_rows import events_from_blob, hold_params, invoice_payment_params

__all__ = ["lock", "read_known", "write_plan"]

_LOCK_KEYS = (
    "SELECT pg_advisory_xact_lock(k) FROM (SELECT DISTINCT hashtextextended(p, 0) AS k"
    " FROM unnest($1::text[]) AS p ORDER BY k) AS s"
)


async def lock(conn: Any, keys: Sequence[str]) -> None:
    """Take transaction advisory locks on ``keys`` in one fixed (sorted) order."""
    if keys:
        await conn.execute(_LOCK_KEYS, list(keys))


async def read_known(conn: Any, n: Normalized) -> Known:
    """What is stored about the PaymentIntents ``n`` names."""
    pis = payment_intents(n)
    if not pis:
        return Known()
    linked = await conn.fetch(
        "SELECT payment_intent FROM pi_links WHERE payment_intent = ANY($1::text[])", pis
    )
    alone = await conn.fetch(
        "SELECT payment_intent FROM pi_standalone WHERE payment_intent = ANY($1::text[])", pis
    )
    answered = answered_payment_intents(n)
    held: list[HeldRow] = []
    if answered:
        rows = await conn.fetch(
            "SELECT id, payment_intent, events FROM deferred"
            " WHERE payment_intent = ANY($1::text[]) ORDER BY id",
            answered,
        )
        held = [
            HeldRow(int(r["id"]), r["payment_intent"], tuple(events_from_blob(r["events"])))
            for r in rows
        ]
    return Known(
        linked=frozenset(r[0] for r in linked),
        standalone=frozenset(r[0] for r in alone),
        held=tuple(held),
    )


async def write_plan(conn: Any, plan: IngestPlan, now: float) -> None:
    """Persist ``plan`` (its events are inserted by the caller)."""
    if plan.links:
        await conn.executemany(
            "INSERT INTO pi_links (payment_intent, invoice, created_at) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING",
            [(link.payment_intent, link.invoice, now) for link in plan.links],
        )
    if plan.standalone:
        await conn.executemany(
            "INSERT INTO pi_standalone (payment_intent, created_at) VALUES ($1, $2)"
            " ON CONFLICT DO NOTHING",
            [(pi, now) for pi in plan.standalone],
        )
    gone = plan.drop + plan.release
    if gone:
        await conn.execute("DELETE FROM deferred WHERE id = ANY($1::bigint[])", gone)
    if plan.holds:
        await conn.executemany(
            "INSERT INTO deferred (payment_intent, livemode, decide_at, next_check_at, events,"
            " created_at, match_key) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [hold_params(h) for h in plan.holds],
        )
    if plan.invoice_payments:
        await conn.executemany(
            "INSERT INTO invoice_payments (ref, invoice, outcome, customer, amount, currency,"
            " seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            [invoice_payment_params(p, now) for p in plan.invoice_payments],
        )
