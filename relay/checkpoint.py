"""The relay's checkpoint: the global position of the last event Kafka acknowledged.

Kept in its own small SQLite file, written with synchronous=FULL, and only ever moved after the
broker acknowledged every event up to it: a crash re-sends at most one batch, never skips one.
"""

from __future__ import annotations

from pathlib import Path

from crm.sqlite_connections import ThreadConnections, translated

_LABEL = "relay checkpoint"


class RelayCheckpoint:
    """One named position in one SQLite file, safe to read and move from any thread."""

    def __init__(self, path: str | Path, name: str = "relay") -> None:
        self._name = name
        self._connections = ThreadConnections(Path(path), _LABEL)
        with translated(_LABEL):
            conn = self._connections.get()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS relay_checkpoints"
                " (name TEXT PRIMARY KEY, position INTEGER NOT NULL)"
            )

    def position(self) -> int:
        """The global position of the last event Kafka acknowledged, 0 if none."""
        with translated(_LABEL):
            row = (
                self._connections.get()
                .execute("SELECT position FROM relay_checkpoints WHERE name = ?", (self._name,))
                .fetchone()
            )
        return 0 if row is None else int(row[0])

    def advance(self, position: int) -> None:
        """Record that every event up to `position` is acknowledged by Kafka."""
        with translated(_LABEL):
            self._connections.get().execute(
                "INSERT INTO relay_checkpoints (name, position) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                (self._name, position),
            )

    def close(self) -> None:
        """Close every thread's connection; the checkpoint is unusable afterwards."""
        self._connections.close()
