"""SQLite schema, as numbered migrations applied in order at start (``schema_migrations``)."""

from __future__ import annotations

import sqlite3
import time

__all__ = ["MIGRATIONS", "migrate"]

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE inbox (
            provider TEXT NOT NULL,
            provider_event_id TEXT NOT NULL,
            type TEXT NOT NULL,
            received_at REAL NOT NULL,
            status TEXT NOT NULL,
            ignored_reason TEXT,
            event_count INTEGER NOT NULL,
            payload BLOB NOT NULL,
            lease_owner TEXT,
            lease_until REAL,
            PRIMARY KEY (provider, provider_event_id)
        );
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            dedupe_key TEXT NOT NULL,
            type TEXT NOT NULL,
            source TEXT NOT NULL,
            source_event_id TEXT NOT NULL,
            created INTEGER NOT NULL,
            stored_at REAL NOT NULL,
            body BLOB NOT NULL
        );
        CREATE INDEX events_by_type ON events (type, seq);
        CREATE TABLE subscribers (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            enabled_events TEXT NOT NULL,
            status TEXT NOT NULL,
            url TEXT,
            signature TEXT NOT NULL,
            secret TEXT,
            previous_secret TEXT,
            previous_secret_expires_at REAL,
            description TEXT,
            metadata TEXT,
            created_via TEXT NOT NULL,
            livemode INTEGER NOT NULL,
            api_version TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            failing_since REAL,
            disabled_reason TEXT
        );
        CREATE TABLE deliveries (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL,
            subscriber_id TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            lease_owner TEXT,
            lease_until REAL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        -- Claims filter by subscriber: a backlog leased to one busy endpoint is not scanned
        -- by every claim for the others (O(backlog) on the single writer thread otherwise).
        CREATE INDEX deliveries_due ON deliveries (status, subscriber_id, next_attempt_at);
        CREATE INDEX deliveries_by_event ON deliveries (event_id);
        CREATE TABLE attempts (
            id INTEGER PRIMARY KEY,
            delivery_id INTEGER NOT NULL,
            event_id TEXT NOT NULL,
            subscriber_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            outcome TEXT NOT NULL,
            status_code INTEGER,
            duration_ms REAL,
            error TEXT,
            response_body TEXT
        );
        CREATE INDEX attempts_by_event ON attempts (event_id, id);
        CREATE INDEX attempts_by_delivery ON attempts (delivery_id);
        CREATE TABLE pi_links (
            payment_intent TEXT PRIMARY KEY,
            invoice TEXT NOT NULL
        );
        CREATE TABLE pi_standalone (
            payment_intent TEXT PRIMARY KEY
        );
        CREATE TABLE deferred (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            payment_intent TEXT NOT NULL,
            livemode INTEGER NOT NULL,
            decide_at REAL NOT NULL,
            events BLOB NOT NULL,
            lease_owner TEXT,
            lease_until REAL,
            created_at REAL NOT NULL
        );
        CREATE INDEX deferred_by_pi ON deferred (payment_intent);
        CREATE INDEX deferred_due ON deferred (decide_at);
        """,
    ),
    (
        2,
        """
        -- An event body stored with its provider object replaced by a mark refers to the
        -- inbox row (same provider) that holds the object (bridge.store.bodies.stored_body).
        ALTER TABLE events ADD COLUMN object_of TEXT;
        """,
    ),
    (
        3,
        """
        -- Named jobs (scheduled reconcile): one instance at a time holds the lease, and the
        -- checkpoint survives restarts.
        CREATE TABLE jobs (
            name TEXT PRIMARY KEY,
            lease_owner TEXT,
            lease_until REAL,
            checkpoint TEXT,
            updated_at REAL NOT NULL
        );
        """,
    ),
    (
        4,
        """
        -- Held outcomes are looked at when a look-up is due (at once with an API key), not
        -- only at the window's end (decide_at). Unlinked ones are matched against the
        -- invoice payments seen (bridge.holds).
        ALTER TABLE deferred ADD COLUMN next_check_at REAL;
        ALTER TABLE deferred ADD COLUMN checks INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE deferred ADD COLUMN match_key TEXT;
        UPDATE deferred SET next_check_at = decide_at;
        DROP INDEX deferred_due;
        CREATE INDEX deferred_due ON deferred (next_check_at);
        CREATE INDEX pi_links_by_invoice ON pi_links (invoice);
        CREATE TABLE invoice_payments (
            ref TEXT PRIMARY KEY,
            invoice TEXT NOT NULL,
            outcome TEXT NOT NULL,
            customer TEXT NOT NULL,
            amount INTEGER NOT NULL,
            currency TEXT NOT NULL,
            seen_at REAL NOT NULL,
            claimed_by TEXT
        );
        CREATE INDEX invoice_payments_by_key
            ON invoice_payments (customer, outcome, amount, currency);
        """,
    ),
    (
        5,
        """
        -- Retention keeps an inbox row while a stored event refers to its object.
        CREATE INDEX events_by_object ON events (object_of) WHERE object_of IS NOT NULL;
        """,
    ),
    (
        6,
        """
        -- The console look-ups (bridge.store.browse): events by customer, subscription,
        -- invoice and time, newest first, failed attempts by time, the attempts of an endpoint.
        ALTER TABLE events ADD COLUMN customer TEXT;
        ALTER TABLE events ADD COLUMN subscription TEXT;
        ALTER TABLE events ADD COLUMN invoice TEXT;
        CREATE INDEX events_by_customer ON events (customer, seq) WHERE customer IS NOT NULL;
        CREATE INDEX events_by_subscription ON events (subscription, seq)
            WHERE subscription IS NOT NULL;
        CREATE INDEX events_by_invoice ON events (invoice, seq) WHERE invoice IS NOT NULL;
        CREATE INDEX events_by_created ON events (created, seq);
        CREATE INDEX attempts_failed ON attempts (started_at) WHERE outcome = 'failed';
        CREATE INDEX attempts_by_subscriber ON attempts (subscriber_id, id);
        """,
    ),
    (
        7,
        """
        -- Retention prunes the PaymentIntent links and standalone marks by age, walking them
        -- in insertion order (rowid). Rows stored before this start their age now.
        ALTER TABLE pi_links ADD COLUMN created_at REAL NOT NULL DEFAULT 0;
        ALTER TABLE pi_standalone ADD COLUMN created_at REAL NOT NULL DEFAULT 0;
        UPDATE pi_links SET created_at = CAST(strftime('%s', 'now') AS REAL);
        UPDATE pi_standalone SET created_at = CAST(strftime('%s', 'now') AS REAL);
        """,
    ),
]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations, each in its own transaction; return the schema version."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (version INTEGER PRIMARY KEY, applied_at REAL)"
    )
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()
    current = int(row[0])
    for version, sql in MIGRATIONS:
        if version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in filter(str.strip, sql.split(";")):
                conn.execute(stmt)
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (version, time.time()),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        current = version
    return current
