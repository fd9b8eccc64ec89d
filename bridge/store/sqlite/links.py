"""SQLite store, the PaymentIntent rule inside an ingest transaction: reads what
:func:`bridge.holds.plan_ingest` needs to know and writes what it decided (links, standalone
PaymentIntents, held outcomes dropped, released or added, invoice payments). Runs on the
writer thread, inside the caller's transaction."""

from __future__ import annotations

import sqlite3

from bridge.holds import HeldRow, IngestPlan, Known, answered_payment_intents, payment_intents
from bridge.normalized import Normalized
from bridge.store.hold_rows import events_from_blob, hold_params, invoice_payment_params

__all__ = ["read_known", "write_plan"]

_Conn = sqlite3.Connection


def _marks(n: int) -> str:
    return ",".join("?" * n)


def read_known(conn: _Conn, n: Normalized) -> Known:
    """What is stored about the PaymentIntents ``n`` names."""
    pis = payment_intents(n)
    if not pis:
        return Known()
    q = _marks(len(pis))
    linked = conn.execute(
        f"SELECT payment_intent FROM pi_links WHERE payment_intent IN ({q})", pis
    ).fetchall()
    alone = conn.execute(
        f"SELECT payment_intent FROM pi_standalone WHERE payment_intent IN ({q})", pis
    ).fetchall()
    answered = answered_payment_intents(n)
    held: list[HeldRow] = []
    if answered:
        rows = conn.execute(
            "SELECT id, payment_intent, events FROM deferred"
            f" WHERE payment_intent IN ({_marks(len(answered))}) ORDER BY id",
            answered,
        ).fetchall()
        held = [HeldRow(int(r[0]), r[1], tuple(events_from_blob(r[2]))) for r in rows]
    return Known(
        linked=frozenset(r[0] for r in linked),
        standalone=frozenset(r[0] for r in alone),
        held=tuple(held),
    )


def write_plan(conn: _Conn, plan: IngestPlan, now: float) -> None:
    """Persist ``plan`` (its events are inserted by the caller)."""
    if plan.links:
        conn.executemany(
            "INSERT OR IGNORE INTO pi_links (payment_intent, invoice, created_at) VALUES (?, ?, ?)",
            [(link.payment_intent, link.invoice, now) for link in plan.links],
        )
    if plan.standalone:
        conn.executemany(
            "INSERT OR IGNORE INTO pi_standalone (payment_intent, created_at) VALUES (?, ?)",
            [(pi, now) for pi in plan.standalone],
        )
    gone = plan.drop + plan.release
    if gone:
        conn.execute(f"DELETE FROM deferred WHERE id IN ({_marks(len(gone))})", gone)
    if plan.holds:
        conn.executemany(
            "INSERT INTO deferred (payment_intent, livemode, decide_at, next_check_at, events,"
            " created_at, match_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [hold_params(h) for h in plan.holds],
        )
    if plan.invoice_payments:
        conn.executemany(
            "INSERT OR IGNORE INTO invoice_payments (ref, invoice, outcome, customer, amount,"
            " currency, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [invoice_payment_params(p, now) for p in plan.invoice_payments],
        )
