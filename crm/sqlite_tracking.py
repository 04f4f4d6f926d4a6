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
    conn.execute(
        "DELETE FROM checkpoints WHERE consumer = ? OR consumer LIKE ? ESCAPE '\\'",
        (consumer, consumer.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "@%"),
    )
