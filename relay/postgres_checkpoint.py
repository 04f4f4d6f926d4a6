"""The relay's checkpoint in a PostgreSQL database, for a relay that keeps no local file.

The kernel's tracking table (crm/postgres_tracking.py), one row per relay name; each move commits
before `advance` returns, so a crash re-sends at most the batch after it. The table may share a
database with the view store: their consumer names differ.
"""

from __future__ import annotations

from crm.postgres_connections import open_pool, translated
from crm.postgres_tracking import create_tracking, read_checkpoint, write_checkpoint
from relay.checkpoint import RelayCheckpointPort

_LABEL = "relay checkpoint"


class PostgresRelayCheckpoint(RelayCheckpointPort):
    """One consumer's position in a PostgreSQL database, safe to read and move from any thread."""

    def __init__(
        self, url: str, name: str = "relay", *, field: str = "relay_checkpoint_url"
    ) -> None:
        """Open (a malformed or unreachable URL is InvalidInput naming `field`)."""
        self._name = name
        self._pool = open_pool(url, field, label=_LABEL, max_size=2)
        try:
            with translated(_LABEL), self._pool.connection() as conn, conn.transaction():
                create_tracking(conn)
        except BaseException:
            self._pool.close()
            raise

    def checkpoint(self, consumer: str, source: str = "") -> int:
        with translated(_LABEL), self._pool.connection() as conn:
            return read_checkpoint(conn, consumer, source)

    def position(self) -> int:
        return self.checkpoint(self._name)

    def advance(self, position: int) -> None:
        with translated(_LABEL), self._pool.connection() as conn, conn.transaction():
            write_checkpoint(conn, self._name, "", position)

    def close(self) -> None:
        self._pool.close()
