"""The PostgreSQL event store's tables, created at open and versioned like the SQLite layout.

Every table name starts with `event` so that the event store can share a database with other
stores without a clash. Opening is safe from several processes at once: the creation runs under
a transaction-scoped advisory lock, since two concurrent `CREATE TABLE IF NOT EXISTS` of one name
can still collide in PostgreSQL's catalogue.

Layout versions (the one row of `event_store_layout`): 1 is the first, with the request index and
the snapshots table from the start. A database written by a newer layout is refused at open.
"""

from __future__ import annotations

import psycopg

from crm.errors import OperationalError
from crm.eventstore.postgres_seals import SCHEMA as SEALS_TABLE

LAYOUT_VERSION = 1

SCHEMA_LOCK = 0x63726D_6576  # any constant: it only has to differ from other advisory lock keys

_TABLES = (
    """
    CREATE TABLE IF NOT EXISTS events (
        global_position bigint NOT NULL,
        stream text NOT NULL,
        revision bigint NOT NULL,
        event_id text NOT NULL,
        type text NOT NULL,
        data bytea NOT NULL,
        metadata text NOT NULL,
        customer_id text NOT NULL,
        recorded_at timestamptz NOT NULL,
        previous_hash text NOT NULL,
        content_hash text NOT NULL,
        CONSTRAINT events_position_key PRIMARY KEY (global_position),
        CONSTRAINT events_event_id_key UNIQUE (event_id),
        CONSTRAINT events_stream_revision_key UNIQUE (stream, revision),
        CONSTRAINT events_position_positive CHECK (global_position > 0),
        CONSTRAINT events_revision_not_negative CHECK (revision >= 0)
    )
    """,
    "CREATE INDEX IF NOT EXISTS events_by_customer ON events (customer_id, global_position)",
    """
    CREATE TABLE IF NOT EXISTS event_requests (
        request_id text NOT NULL,
        stream text NOT NULL,
        command_digest text NOT NULL,
        event_ids text[] NOT NULL,
        revision bigint NOT NULL,
        global_position bigint NOT NULL,
        PRIMARY KEY (request_id, stream)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS event_snapshots (
        stream text PRIMARY KEY,
        revision bigint NOT NULL,
        event_id text NOT NULL,
        version integer NOT NULL,
        state bytea NOT NULL
    )
    """,
    SEALS_TABLE,
    """
    CREATE TABLE IF NOT EXISTS event_store_layout (
        only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
        version integer NOT NULL
    )
    """,
)

RACE_CONSTRAINTS = frozenset(
    {"events_position_key", "events_event_id_key", "events_stream_revision_key"}
)
"""Unique constraints that only a writer racing past the append lock could break: a lost race,
reported as a conflict."""


def create(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Create the tables if missing and record the layout; refuse a newer layout."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        for statement in _TABLES:
            conn.execute(statement)
        row = conn.execute("SELECT version FROM event_store_layout").fetchone()
        if row is None:
            conn.execute("INSERT INTO event_store_layout (version) VALUES (%s)", (LAYOUT_VERSION,))
            return
        (version,) = row
        if not isinstance(version, int) or version > LAYOUT_VERSION:
            raise OperationalError(
                f"postgres event store: the database has layout {version}, written by a newer"
                f" version of this software (this one knows layouts up to {LAYOUT_VERSION})"
            )
