"""The relay's checkpoint: the global position of the last event Kafka acknowledged.

Only ever moved after the broker acknowledged every event up to it: a crash re-sends at most one
batch, never skips one. `RelayCheckpointPort` is what the relay needs; `RelayCheckpoint` keeps it
in its own small SQLite file (the kernel's tracking table), written with synchronous=FULL, and
relay/postgres_checkpoint.py in a PostgreSQL database.
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path

from crm.sqlite_connections import ThreadConnections, immediate, translated
from crm.sqlite_tracking import TRACKING_SCHEMA, read_checkpoint, write_checkpoint
from crm.tracking import Tracking

_LABEL = "relay checkpoint"


class RelayCheckpointPort(Tracking):
    """Where the relay's position is kept; safe to read and move from any thread."""

    @abstractmethod
    def position(self) -> int:
        """The global position of the last event Kafka acknowledged, 0 if none."""

    @abstractmethod
    def advance(self, position: int) -> None:
        """Record, durably, that every event up to `position` is acknowledged by Kafka."""

    @abstractmethod
    def close(self) -> None:
        """Release the store; the checkpoint is unusable afterwards."""


class RelayCheckpoint(RelayCheckpointPort):
    """One consumer's position in one SQLite file, safe to read and move from any thread."""

    def __init__(self, path: str | Path, name: str = "relay") -> None:
        self._name = name
        self._connections = ThreadConnections(Path(path), _LABEL)
        with translated(_LABEL):
            conn = self._connections.get()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(TRACKING_SCHEMA)

    def checkpoint(self, consumer: str, source: str = "") -> int:
        with translated(_LABEL):
            return read_checkpoint(self._connections.get(), consumer, source)

    def position(self) -> int:
        """The global position of the last event Kafka acknowledged, 0 if none."""
        return self.checkpoint(self._name)

    def advance(self, position: int) -> None:
        """Record that every event up to `position` is acknowledged by Kafka."""
        with translated(_LABEL):
            conn = self._connections.get()
            with immediate(conn):
                write_checkpoint(conn, self._name, "", position)

    def close(self) -> None:
        """Close every thread's connection; the checkpoint is unusable afterwards."""
        self._connections.close()
