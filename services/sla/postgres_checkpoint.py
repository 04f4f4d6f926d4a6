"""The deadline process's checkpoint in a PostgreSQL database, for a worker without a local file.

The same two tables as the SQLite checkpoint (services/sla/checkpoint.py): the kernel's tracking
table for the position and `planner_states` for the state, written in one transaction; loading
reads both from one snapshot. The tables may share a database with the view store and the relay's
checkpoint: their consumer names differ.
"""

from __future__ import annotations

from crm.postgres_connections import open_pool, translated
from crm.postgres_tracking import create_tracking, read_checkpoint, write_checkpoint
from services.sla.checkpoint import CONSUMER, STATES_SCHEMA, DeadlineCheckpointPort, SavedState

_LABEL = "deadline checkpoint"


class PostgresDeadlineCheckpoint(DeadlineCheckpointPort):
    """One planner's saved state in a PostgreSQL database, safe to use from any thread."""

    def __init__(
        self, url: str, name: str = CONSUMER, *, field: str = "deadline_checkpoint_url"
    ) -> None:
        """Open (a malformed or unreachable URL is InvalidInput naming `field`)."""
        self._name = name
        self._pool = open_pool(url, field, label=_LABEL, max_size=2)
        try:
            with translated(_LABEL), self._pool.connection() as conn, conn.transaction():
                create_tracking(conn)  # holds the schema lock for the table below too
                conn.execute(STATES_SCHEMA)
        except BaseException:
            self._pool.close()
            raise

    def checkpoint(self, consumer: str, source: str = "") -> int:
        with translated(_LABEL), self._pool.connection() as conn:
            return read_checkpoint(conn, consumer, source)

    def load(self) -> SavedState | None:
        with translated(_LABEL), self._pool.connection() as conn, conn.transaction():
            # One snapshot for both reads: the position and the state saved with it.
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            position = read_checkpoint(conn, self._name)
            row = conn.execute(
                "SELECT version, state FROM planner_states WHERE consumer = %s", (self._name,)
            ).fetchone()
        return None if row is None else SavedState(position, int(row[0]), str(row[1]))

    def save(self, saved: SavedState) -> None:
        with translated(_LABEL), self._pool.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO planner_states (consumer, version, state) VALUES (%s, %s, %s)"
                " ON CONFLICT (consumer) DO UPDATE SET"
                " version = EXCLUDED.version, state = EXCLUDED.state",
                (self._name, saved.version, saved.state),
            )
            write_checkpoint(conn, self._name, "", saved.position)

    def close(self) -> None:
        self._pool.close()
