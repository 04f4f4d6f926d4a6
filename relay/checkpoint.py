"""The relay's checkpoint: the global position of the last event Kafka acknowledged.

Kept in its own small SQLite file, written with synchronous=FULL, and only ever moved after the
broker acknowledged every event up to it: a crash re-sends at most one batch, never skips one.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from crm.errors import OperationalError


class RelayCheckpoint:
    """One named position in one SQLite file."""

    def __init__(self, path: str | Path, name: str = "relay") -> None:
        self._name = name
        try:
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS relay_checkpoints"
                " (name TEXT PRIMARY KEY, position INTEGER NOT NULL)"
            )
        except sqlite3.Error as exc:
            raise OperationalError(f"relay checkpoint {path}: {exc}") from exc

    def position(self) -> int:
        row = self._conn.execute(
            "SELECT position FROM relay_checkpoints WHERE name = ?", (self._name,)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def advance(self, position: int) -> None:
        """Record that every event up to `position` is acknowledged by Kafka."""
        self._conn.execute(
            "INSERT INTO relay_checkpoints (name, position) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            (self._name, position),
        )

    def close(self) -> None:
        self._conn.close()
