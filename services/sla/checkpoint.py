"""The deadline process's checkpoint: its planner's state and the global position it reflects.

The kernel's tracking table holds the position, a table beside it the planner's state (JSON) and
the planner version that wrote it, both written in one durable transaction, so a restart never
pairs a state with a position it does not reflect. A restart then reads only the events after that
position instead of all of history. `DeadlineCheckpointPort` is what the process needs;
`DeadlineCheckpoint` keeps it in a small SQLite file of its own, and
services/sla/postgres_checkpoint.py in a PostgreSQL database.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path

from crm.sqlite_connections import ThreadConnections, immediate, translated
from crm.sqlite_tracking import TRACKING_SCHEMA, read_checkpoint, write_checkpoint
from crm.tracking import Tracking

_LABEL = "deadline checkpoint"
CONSUMER = "deadline-process"

STATES_SCHEMA = """
    CREATE TABLE IF NOT EXISTS planner_states (
        consumer TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        state TEXT NOT NULL
    )
"""


@dataclass(frozen=True)
class SavedState:
    """A planner's state as saved: the position it reflects, the planner version that wrote it."""

    position: int
    version: int
    state: str


class DeadlineCheckpointPort(Tracking):
    """Where one planner's state is saved; safe to use from any thread."""

    @abstractmethod
    def load(self) -> SavedState | None:
        """The state last saved, None if none was."""

    @abstractmethod
    def save(self, saved: SavedState) -> None:
        """Replace the saved state and its position, together."""

    @abstractmethod
    def close(self) -> None:
        """Release the store; the checkpoint is unusable afterwards."""


class DeadlineCheckpoint(DeadlineCheckpointPort):
    """One planner's saved state in one SQLite file, safe to use from any thread."""

    def __init__(self, path: str | Path, name: str = CONSUMER) -> None:
        self._name = name
        self._connections = ThreadConnections(Path(path), _LABEL)
        with translated(_LABEL):
            conn = self._connections.get()
            conn.execute("PRAGMA journal_mode=WAL")
            with immediate(conn):
                conn.execute(TRACKING_SCHEMA)
                conn.execute(STATES_SCHEMA)

    def checkpoint(self, consumer: str, source: str = "") -> int:
        with translated(_LABEL):
            return read_checkpoint(self._connections.get(), consumer, source)

    def load(self) -> SavedState | None:
        """The state last saved, None if none was."""
        with translated(_LABEL):
            conn = self._connections.get()
            conn.execute("BEGIN")  # one snapshot: the position and the state saved with it
            try:
                position = read_checkpoint(conn, self._name)
                row = conn.execute(
                    "SELECT version, state FROM planner_states WHERE consumer = ?", (self._name,)
                ).fetchone()
            finally:
                conn.execute("COMMIT")
        return None if row is None else SavedState(position, int(row[0]), str(row[1]))

    def save(self, saved: SavedState) -> None:
        """Replace the saved state and its position, together."""
        with translated(_LABEL):
            conn = self._connections.get()
            with immediate(conn):
                conn.execute(
                    "INSERT INTO planner_states (consumer, version, state) VALUES (?, ?, ?)"
                    " ON CONFLICT (consumer) DO UPDATE SET"
                    " version = excluded.version, state = excluded.state",
                    (self._name, saved.version, saved.state),
                )
                write_checkpoint(conn, self._name, "", saved.position)

    def close(self) -> None:
        """Close every thread's connection; the checkpoint is unusable afterwards."""
        self._connections.close()
