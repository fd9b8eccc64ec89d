"""PostgreSQL schema, as numbered migrations applied in order at start (``schema_migrations``).

Same tables and columns as :mod:`bridge.store.sqlite.schema` (the row mapping in
:mod:`bridge.store.rows` is shared). Times are unix seconds (``DOUBLE PRECISION``); event
bodies are the exact ``Event.to_json()`` bytes (``BYTEA``), so deliveries are byte-exact.

:func:`migrate` holds a session-level ``pg_advisory_lock`` while it migrates, so several
instances starting at once apply each migration exactly once (the others wait, then find
nothing to do).
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["MIGRATIONS", "MIGRATION_LOCK_KEY", "migrate"]

# An arbitrary constant bigint, the key of the session advisory lock taken while migrating.
MIGRATION_LOCK_KEY = 0x7061_7962_7269_6467  # "paybridg"

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE inbox (
            provider TEXT NOT NULL,
            provider_event_id TEXT NOT NULL,
            type TEXT NOT NULL,
            received_at DOUBLE PRECISION NOT NULL,
            status TEXT NOT NULL,
            ignored_reason TEXT,
            event_count INTEGER NOT NULL,
            payload BYTEA NOT NULL,
            lease_owner TEXT,
            lease_until DOUBLE PRECISION,
            PRIMARY KEY (provider, provider_event_id)
        );
        CREATE INDEX inbox_ignored ON inbox (status) WHERE status = 'ignored';
        CREATE TABLE events (
            seq BIGSERIAL PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            dedupe_key TEXT NOT NULL,
            type TEXT NOT NULL,
            source TEXT NOT NULL,
            source_event_id TEXT NOT NULL,
            created BIGINT NOT NULL,
            stored_at DOUBLE PRECISION NOT NULL,
            body BYTEA NOT NULL,
            UNIQUE (type, dedupe_key)
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
            previous_secret_expires_at DOUBLE PRECISION,
            description TEXT,
            metadata TEXT,
            created_via TEXT NOT NULL,
            livemode BOOLEAN NOT NULL,
            api_version TEXT,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL,
            failing_since DOUBLE PRECISION,
            disabled_reason TEXT
        );
        CREATE TABLE deliveries (
            id BIGSERIAL PRIMARY KEY,
            event_id TEXT NOT NULL,
            subscriber_id TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at DOUBLE PRECISION NOT NULL,
            lease_owner TEXT,
            lease_until DOUBLE PRECISION,
            created_at DOUBLE PRECISION NOT NULL,
            updated_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX deliveries_due ON deliveries (next_attempt_at, id) WHERE status = 'pending';
        CREATE INDEX deliveries_by_event ON deliveries (event_id);
        CREATE INDEX deliveries_by_subscriber ON deliveries (subscriber_id, status);
        CREATE INDEX deliveries_due_by_subscriber ON deliveries (subscriber_id, next_attempt_at)
            WHERE status = 'pending';
        CREATE TABLE attempts (
            id BIGSERIAL PRIMARY KEY,
            delivery_id BIGINT NOT NULL,
            event_id TEXT NOT NULL,
            subscriber_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            started_at DOUBLE PRECISION NOT NULL,
            finished_at DOUBLE PRECISION,
            outcome TEXT NOT NULL,
            status_code INTEGER,
            duration_ms DOUBLE PRECISION,
            error TEXT,
            response_body TEXT
        );
        CREATE INDEX attempts_by_event ON attempts (event_id, id);
        CREATE INDEX attempts_by_subscriber ON attempts (subscriber_id, id);
        CREATE INDEX attempts_by_delivery ON attempts (delivery_id);
        CREATE TABLE pi_links (
            payment_intent TEXT PRIMARY KEY,
            invoice TEXT NOT NULL
        );
        CREATE TABLE pi_standalone (
            payment_intent TEXT PRIMARY KEY
        );
        CREATE TABLE deferred (
            id BIGSERIAL PRIMARY KEY,
            payment_intent TEXT NOT NULL,
            livemode BOOLEAN NOT NULL,
            decide_at DOUBLE PRECISION NOT NULL,
            events BYTEA NOT NULL,
            lease_owner TEXT,
            lease_until DOUBLE PRECISION,
            created_at DOUBLE PRECISION NOT NULL
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
        -- The raw request bodies (~3 KB of JSON each) are over the TOAST threshold, so
        -- PostgreSQL compresses them: lz4 costs a fraction of the default pglz's CPU. New rows
        -- only; a server built without lz4 keeps pglz (the error is swallowed on purpose).
        DO $$ BEGIN
            EXECUTE 'ALTER TABLE inbox ALTER COLUMN payload SET COMPRESSION lz4';
        EXCEPTION WHEN OTHERS THEN
            RAISE NOTICE 'inbox.payload keeps the default compression: %', SQLERRM;
        END $$;
        """,
    ),
    (
        4,
        """
        -- Named jobs (scheduled reconcile): one instance at a time holds the lease, and the
        -- checkpoint survives restarts.
        CREATE TABLE jobs (
            name TEXT PRIMARY KEY,
            lease_owner TEXT,
            lease_until DOUBLE PRECISION,
            checkpoint TEXT,
            updated_at DOUBLE PRECISION NOT NULL
        );
        """,
    ),
    (
        5,
        """
        -- Held outcomes are looked at when a look-up is due (at once with an API key), not
        -- only at the window's end (decide_at). Unlinked ones are matched against the
        -- invoice payments seen (bridge.holds).
        ALTER TABLE deferred ADD COLUMN next_check_at DOUBLE PRECISION;
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
            amount BIGINT NOT NULL,
            currency TEXT NOT NULL,
            seen_at DOUBLE PRECISION NOT NULL,
            claimed_by TEXT
        );
        CREATE INDEX invoice_payments_by_key
            ON invoice_payments (customer, outcome, amount, currency);
        """,
    ),
    (
        6,
        """
        -- Retention walks the inbox in insertion order and keeps a row while a stored event
        -- refers to its object.
        ALTER TABLE inbox ADD COLUMN seq BIGSERIAL;
        CREATE INDEX inbox_by_seq ON inbox (seq);
        CREATE INDEX events_by_object ON events (object_of) WHERE object_of IS NOT NULL;
        """,
    ),
    (
        7,
        """
        -- The console's look-ups (bridge.store.browse): events by customer, subscription,
        -- invoice and time, newest first; failed attempts by time.
        ALTER TABLE events ADD COLUMN customer TEXT,
            ADD COLUMN subscription TEXT, ADD COLUMN invoice TEXT;
        CREATE INDEX events_by_customer ON events (customer, seq) WHERE customer IS NOT NULL;
        CREATE INDEX events_by_subscription ON events (subscription, seq)
            WHERE subscription IS NOT NULL;
        CREATE INDEX events_by_invoice ON events (invoice, seq) WHERE invoice IS NOT NULL;
        CREATE INDEX events_by_created ON events (created, seq);
        CREATE INDEX attempts_failed ON attempts (started_at) WHERE outcome = 'failed';
        """,
    ),
    (
        8,
        """
        -- Retention prunes the PaymentIntent links and standalone marks by age, walking them
        -- in insertion order (seq). Rows stored before this start their age now.
        ALTER TABLE pi_links ADD COLUMN created_at DOUBLE PRECISION NOT NULL
            DEFAULT extract(epoch FROM now()), ADD COLUMN seq BIGSERIAL;
        ALTER TABLE pi_links ALTER COLUMN created_at DROP DEFAULT;
        CREATE INDEX pi_links_by_seq ON pi_links (seq);
        ALTER TABLE pi_standalone ADD COLUMN created_at DOUBLE PRECISION NOT NULL
            DEFAULT extract(epoch FROM now()), ADD COLUMN seq BIGSERIAL;
        ALTER TABLE pi_standalone ALTER COLUMN created_at DROP DEFAULT;
        CREATE INDEX pi_standalone_by_seq ON pi_standalone (seq);
        """,
    ),
]


async def migrate(conn: Any) -> int:
    """Apply pending migrations on the asyncpg connection ``conn``, each in its own
    transaction, under the migration advisory lock; return the schema version.

    Raises whatever asyncpg raises (the caller maps it to ``StoreError``)."""
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
        )
        current = int(
            await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
        )
        for version, sql in MIGRATIONS:
            if version <= current:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                    version,
                    time.time(),
                )
            current = version
        return current
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
