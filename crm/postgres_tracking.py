"""Checkpoints in a PostgreSQL database, read and moved inside the caller's write transaction.

The counterpart of crm/sqlite_tracking.py: the same table and the same keys (crm/tracking.py), so
a consumer's position is written by the statement that sits in the transaction of its changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Connection

from crm.tracking import checkpoint_key

SCHEMA_LOCK = 0x63726D5F736368  # "crm_sch": every store's schema changes take it, one at a time
"""Concurrent CREATE TABLE IF NOT EXISTS of one table can fail in PostgreSQL; processes that start
together (a relay, a worker, a server on one database) create their tables one after another."""

TRACKING_SCHEMA = """
    CREATE TABLE IF NOT EXISTS checkpoints (
        consumer TEXT COLLATE "C" PRIMARY KEY,
        position BIGINT NOT NULL
    )
"""


def create_tracking(conn: Connection[Any]) -> None:
    """Create the checkpoint table if missing, in the caller's transaction, under SCHEMA_LOCK."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
    conn.execute(TRACKING_SCHEMA)


def read_checkpoint(conn: Connection[Any], consumer: str, source: str = "") -> int:
    """The recorded position, 0 if none (psycopg errors are the caller's to translate)."""
    row = conn.execute(
        "SELECT position FROM checkpoints WHERE consumer = %s", (checkpoint_key(consumer, source),)
    ).fetchone()
    return 0 if row is None else int(row[0])


def read_checkpoints(
    conn: Connection[Any], consumers: Sequence[str], source: str = ""
) -> dict[str, int]:
    """The recorded position of each consumer from one source (0 if none), in one query."""
    keys = {checkpoint_key(consumer, source): consumer for consumer in consumers}
    rows = conn.execute(
        "SELECT consumer, position FROM checkpoints WHERE consumer = ANY(%s::text[])",
        (list(keys),),
    ).fetchall()
    found = {keys[str(key)]: int(position) for key, position in rows}
    return {consumer: found.get(consumer, 0) for consumer in consumers}


def write_checkpoint(conn: Connection[Any], consumer: str, source: str, position: int) -> None:
    """Record `position`; call it inside the transaction that wrote the changes up to it."""
    conn.execute(
        "INSERT INTO checkpoints (consumer, position) VALUES (%s, %s)"
        " ON CONFLICT (consumer) DO UPDATE SET position = EXCLUDED.position",
        (checkpoint_key(consumer, source), position),
    )


def forget_checkpoints(conn: Connection[Any], consumer: str) -> None:
    """Drop every source's position of `consumer`, so it starts again from event 0."""
    checkpoint_key(consumer)  # refuses a name that could match another consumer's keys
    conn.execute(
        "DELETE FROM checkpoints WHERE consumer = %s OR starts_with(consumer, %s)",
        (consumer, f"{consumer}@"),
    )
