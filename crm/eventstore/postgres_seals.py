"""The PostgreSQL event store's seals: one row per seal, its entries beside it, kept in order.

A seal is inserted in a transaction that locks the seals table and reads the newest seal first,
so of two sealers racing from the same seal (in any process) only the first is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

import psycopg

from crm.errors import ConcurrencyConflict, IntegrityError
from crm.seals import Seal, SealEntry, decode_entries, encode_entries

Connection = psycopg.Connection[Any]

SCHEMA = """
    CREATE TABLE IF NOT EXISTS event_seals (
        position bigint PRIMARY KEY,
        count bigint NOT NULL,
        head text NOT NULL,
        previous_position bigint NOT NULL,
        sealed_at text NOT NULL,
        key_id text NOT NULL,
        signature text NOT NULL,
        entries bytea NOT NULL
    )
"""

_COLUMNS = "position, count, head, previous_position, sealed_at, key_id, signature"

CHAIN_SQL = (
    "SELECT global_position, stream, revision, event_id, type, data, metadata, recorded_at,"
    " previous_hash, content_hash FROM events WHERE global_position > %s"
    " ORDER BY global_position LIMIT %s"
)


def save(conn: Connection, seal: Seal, entries: Sequence[SealEntry]) -> None:
    """Insert the seal if it continues the newest one, under the seals table's lock."""
    with conn.transaction():
        conn.execute("LOCK TABLE event_seals IN EXCLUSIVE MODE")
        row = conn.execute("SELECT COALESCE(max(position), 0) FROM event_seals").fetchone()
        newest = int(row[0]) if row else 0
        if newest != seal.previous_position:
            raise ConcurrencyConflict(
                f"seal at {seal.position} continues the seal at {seal.previous_position},"
                f" but the newest kept seal is at {newest}"
            )
        conn.execute(
            f"INSERT INTO event_seals ({_COLUMNS}, entries)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
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


def read(conn: Connection, after: int, limit: int) -> list[Seal]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM event_seals WHERE position > %s ORDER BY position LIMIT %s",
        (after, max(limit, 0)),
    ).fetchall()
    return [Seal(*row) for row in rows]


def latest(conn: Connection) -> Seal | None:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM event_seals ORDER BY position DESC LIMIT 1"
    ).fetchone()
    return None if row is None else Seal(*row)


def entries_bytes(conn: Connection, position: int) -> bytes | None:
    row = conn.execute(
        "SELECT entries FROM event_seals WHERE position = %s", (position,), binary=True
    ).fetchone()
    return None if row is None else bytes(row[0])


def entries(conn: Connection, position: int) -> list[SealEntry]:
    stored = entries_bytes(conn, position)
    if stored is None:
        return []
    try:
        return decode_entries(stored)
    except ValueError as exc:
        raise IntegrityError(f"seal at {position}: {exc}") from None


def chain_rows(conn: Connection, after: int, limit: int) -> list[tuple[Any, ...]]:
    """The rows as stored; recorded_at back to the ISO text that was hashed (UTC)."""
    rows = conn.execute(CHAIN_SQL, (after, max(limit, 0)), binary=True).fetchall()
    return [
        (p, s, r, i, t, bytes(d), m, at.astimezone(UTC).isoformat(), ph, ch)
        for p, s, r, i, t, d, m, at, ph, ch in rows
    ]
