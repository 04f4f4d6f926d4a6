"""The SQLite event store's seals: one row per seal, its entries beside it, kept in order.

A seal is inserted in a write transaction that first reads the newest seal, so of two sealers
racing from the same seal only the first is kept (the second is a ConcurrencyConflict).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from crm.errors import ConcurrencyConflict, IntegrityError
from crm.seals import Seal, SealEntry, decode_entries, encode_entries

SCHEMA = """
    CREATE TABLE IF NOT EXISTS seals (
        position INTEGER PRIMARY KEY,
        count INTEGER NOT NULL,
        head TEXT NOT NULL,
        previous_position INTEGER NOT NULL,
        sealed_at TEXT NOT NULL,
        key_id TEXT NOT NULL,
        signature TEXT NOT NULL,
        entries BLOB NOT NULL
    )
"""

_COLUMNS = "position, count, head, previous_position, sealed_at, key_id, signature"

CHAIN_SQL = (
    "SELECT global_position, stream, revision, event_id, type, data, metadata, recorded_at,"
    " previous_hash, content_hash FROM events WHERE global_position > ?"
    " ORDER BY global_position LIMIT ?"
)
"""The rows a verifier rehashes, as stored."""


def save(conn: sqlite3.Connection, seal: Seal, entries: Sequence[SealEntry]) -> None:
    """Insert the seal if it continues the newest one (call inside a write transaction)."""
    newest = conn.execute("SELECT MAX(position) FROM seals").fetchone()[0] or 0
    if newest != seal.previous_position:
        raise ConcurrencyConflict(
            f"seal at {seal.position} continues the seal at {seal.previous_position},"
            f" but the newest kept seal is at {newest}"
        )
    conn.execute(
        f"INSERT INTO seals ({_COLUMNS}, entries) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            seal.position,
            seal.count,
            seal.head,
            seal.previous_position,
            seal.sealed_at,
            seal.key_id,
            seal.signature,
            encode_entries(entries),
        ),
    )


def read(conn: sqlite3.Connection, after: int, limit: int) -> list[Seal]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM seals WHERE position > ? ORDER BY position LIMIT ?",
        (after, max(limit, 0)),
    ).fetchall()
    return [Seal(*row) for row in rows]


def latest(conn: sqlite3.Connection) -> Seal | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM seals ORDER BY position DESC LIMIT 1").fetchone()
    return None if row is None else Seal(*row)


def entries_bytes(conn: sqlite3.Connection, position: int) -> bytes | None:
    row = conn.execute("SELECT entries FROM seals WHERE position = ?", (position,)).fetchone()
    return None if row is None else bytes(row[0])


def entries(conn: sqlite3.Connection, position: int) -> list[SealEntry]:
    stored = entries_bytes(conn, position)
    if stored is None:
        return []
    try:
        return decode_entries(stored)
    except ValueError as exc:
        raise IntegrityError(f"seal at {position}: {exc}") from None
