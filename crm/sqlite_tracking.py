"""Checkpoints in an SQLite database, read and moved inside the caller's write transaction."""

from __future__ import annotations

import sqlite3

from crm.tracking import checkpoint_key

TRACKING_SCHEMA = """
    CREATE TABLE IF NOT EXISTS checkpoints (
        consumer TEXT PRIMARY KEY,
        position INTEGER NOT NULL
    )
"""


def read_checkpoint(conn: sqlite3.Connection, consumer: str, source: str = "") -> int:
    """The recorded position, 0 if none (sqlite3 errors are the caller's to translate)."""
    row = conn.execute(
        "SELECT position FROM checkpoints WHERE consumer = ?", (checkpoint_key(consumer, source),)
    ).fetchone()
    return 0 if row is None else int(row[0])


def write_checkpoint(conn: sqlite3.Connection, consumer: str, source: str, position: int) -> None:
    """Record `position`; call it inside the transaction that wrote the changes up to it."""
    conn.execute(
        "INSERT INTO checkpoints (consumer, position) VALUES (?, ?)"
        " ON CONFLICT (consumer) DO UPDATE SET position = excluded.position",
        (checkpoint_key(consumer, source), position),
    )


def forget_checkpoints(conn: sqlite3.Connection, consumer: str) -> None:
    """Drop every source's position of `consumer`, so it starts again from event 0."""
    conn.execute(f"DELETE FROM checkpoints WHERE {_EVERY_SOURCE}", _every_source(consumer))


def furthest_checkpoint(conn: sqlite3.Connection, consumer: str) -> int:
    """The furthest position `consumer` applied from any source, 0 if none."""
    row = conn.execute(
        f"SELECT MAX(position) FROM checkpoints WHERE {_EVERY_SOURCE}", _every_source(consumer)
    ).fetchone()
    return int(row[0] or 0)


_EVERY_SOURCE = "consumer = ? OR consumer LIKE ? ESCAPE '\\'"


def _every_source(consumer: str) -> tuple[str, str]:
    """The parameters of `_EVERY_SOURCE`: the consumer's key alone, and the keys per source."""
    escaped = consumer.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return consumer, escaped + "@%"
