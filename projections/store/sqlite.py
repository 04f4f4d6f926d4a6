"""The embedded view store: one SQLite file in WAL mode, every projection's tables side by side.

Each batch is written under the database's write lock (BEGIN IMMEDIATE) together with the
checkpoints of the projections it applies, so a reader never sees views ahead of or behind the
recorded positions. Each projection's tables carry its schema version: when the code's version
differs, that projection alone is dropped and rebuilt from event 0 while the others keep serving.
While a thread replays history (`replaying`), the views it writes are also kept in memory for its
next batches, instead of being read back and decoded; durability stays synchronous=FULL, as a
rebuild's large transactions make the cost of a durable commit negligible.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from crm.errors import InvalidInput
from crm.sqlite_connections import ThreadConnections, immediate, translated
from crm.sqlite_tracking import (
    TRACKING_SCHEMA,
    forget_checkpoints,
    read_checkpoint,
    write_checkpoint,
)
from projections.case_view import CaseView
from projections.catalogue import (
    CASE_VIEWS,
    CUSTOMER_RISK,
    KPI_FACTS,
    PROJECTION_NAMES,
    PROJECTIONS,
    TIMELINE,
    Batch,
    news,
    projection_named,
)
from projections.follow_ups import FollowUp
from projections.kpi_report import KpiQuery, KpiReport
from projections.risk import CustomerRisk
from projections.store import sqlite_cases, sqlite_kpis, sqlite_risk, sqlite_timeline
from projections.store.port import ViewStore
from projections.store.queries import (
    EscalationQuery,
    FollowUpQuery,
    TimelinePage,
    TimelineQuery,
)
from projections.store.remembered import Remembered
from projections.timeline import TimelineEntry

LAYOUT_VERSION = 6
"""The file's layout (user_version): 6 keeps a schema version per projection. A file of an older
layout (5 or less: one "views" projection) is dropped whole and rebuilt from the events."""

log = logging.getLogger(__name__)
_LABEL = "sqlite view store"
REPLAY_CACHE_KIB = 256 * 1024
"""SQLite's page cache while replaying (256 MiB): index pages of big tables stay in memory."""


class _Tables(NamedTuple):
    """One projection's tables: their names (to drop), schema, and how a batch is written."""

    names: tuple[str, ...]
    schema: tuple[str, ...]
    write: Callable[[sqlite3.Connection, Batch, Any], None]  # (conn, news, kept or None)


_TABLES = {
    TIMELINE.name: _Tables(sqlite_timeline.TABLES, sqlite_timeline.SCHEMA, sqlite_timeline.write),
    CASE_VIEWS.name: _Tables(sqlite_cases.TABLES, sqlite_cases.SCHEMA, sqlite_cases.write),
    CUSTOMER_RISK.name: _Tables(sqlite_risk.TABLES, sqlite_risk.SCHEMA, sqlite_risk.write),
    KPI_FACTS.name: _Tables(sqlite_kpis.TABLES, sqlite_kpis.SCHEMA, sqlite_kpis.write),
}


class SqliteViewStore(ViewStore):
    """View store in one SQLite file; one connection per thread, as gRPC serves from a pool."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self._path = Path(path)
        self._connections = ThreadConnections(self._path, _LABEL)
        self._replaying = threading.local()  # this thread's kept values, while it replays
        conn = self._connection()
        with translated(_LABEL):
            conn.execute("PRAGMA journal_mode=WAL")
            with immediate(conn):
                _migrate(conn)

    def _connection(self) -> sqlite3.Connection:
        with translated(_LABEL):
            return self._connections.get()

    def close(self) -> None:
        """Close every thread's connection; the store is unusable afterwards."""
        self._connections.close()
        super().close()

    def checkpoint(self, consumer: str, source: str = "") -> int:
        """The global position of the last event `consumer` applied from `source`, 0 if none."""
        projection_named(consumer)
        with translated(_LABEL):
            return read_checkpoint(self._connection(), consumer, source)

    def apply(
        self, batch: Batch, source: str = "", projections: Sequence[str] = PROJECTION_NAMES
    ) -> None:
        """Write each projection's changes and its new checkpoint, all in one transaction."""
        if not projections:
            raise InvalidInput("projections", "name at least one projection")
        for name in projections:
            projection_named(name)
        if not batch:
            return
        conn = self._connection()
        kept_by_name: dict[str, Remembered[Any]] | None = getattr(self._replaying, "kept", None)
        with translated(_LABEL), immediate(conn):
            for name in projections:
                checkpoint = read_checkpoint(conn, name, source)
                fresh = news(batch, checkpoint)
                if not fresh:
                    continue
                kept = None if kept_by_name is None else kept_by_name[name]
                if kept is not None and kept.position != checkpoint:
                    kept.forget()  # someone else wrote this projection: trust only the tables
                position = fresh[-1][0].global_position
                _TABLES[name].write(conn, fresh, kept)
                write_checkpoint(conn, name, source, position)
                if kept is not None:
                    kept.position = position

    @contextmanager
    def replaying(self) -> Iterator[None]:
        """Keep what this thread writes for its next batches, and a larger page cache.

        Values kept are trusted only while the projection's checkpoint is the one this thread
        left (checked in each transaction), so another writer can never make them stale.
        """
        conn = self._connection()
        with translated(_LABEL):
            cache_size = conn.execute("PRAGMA cache_size").fetchone()[0]
            conn.execute(f"PRAGMA cache_size = -{REPLAY_CACHE_KIB}")
        self._replaying.kept = {name: Remembered[Any]() for name in _TABLES}
        try:
            yield
        finally:
            del self._replaying.kept
            with translated(_LABEL):
                conn.execute(f"PRAGMA cache_size = {int(cache_size)}")

    def timeline(self, query: TimelineQuery) -> TimelinePage:
        with translated(_LABEL):
            return sqlite_timeline.page(self._connection(), query)

    def timeline_members(self, customer_id: str) -> frozenset[str]:
        with translated(_LABEL):
            return sqlite_timeline.members(self._connection(), customer_id)

    def entries_after(
        self, customer_id: str, after_position: int, limit: int
    ) -> list[TimelineEntry]:
        with translated(_LABEL):
            return sqlite_timeline.entries_after(
                self._connection(), customer_id, after_position, limit
            )

    def timeline_watermark(self) -> int:
        with translated(_LABEL):
            return sqlite_timeline.watermark(self._connection())

    def writers_after(self, after_sequence: int, limit: int) -> list[tuple[int, str, str]]:
        with translated(_LABEL):
            return sqlite_timeline.writers_after(self._connection(), after_sequence, limit)

    def entries_applied_after(
        self, customer_id: str, after_sequence: int, limit: int
    ) -> tuple[list[TimelineEntry], int]:
        with translated(_LABEL):
            return sqlite_timeline.entries_applied_after(
                self._connection(), customer_id, after_sequence, limit
            )

    def case_view(self, case_id: str) -> CaseView | None:
        with translated(_LABEL):
            return sqlite_cases.case_view(self._connection(), case_id, "case_views")

    def escalated_cases(self, query: EscalationQuery) -> list[CaseView]:
        with translated(_LABEL):
            return sqlite_cases.escalated(self._connection(), query)

    def follow_ups(self, query: FollowUpQuery) -> list[FollowUp]:
        with translated(_LABEL):
            return sqlite_cases.follow_ups(self._connection(), query)

    def customer_risk(self, customer_id: str) -> CustomerRisk:
        with translated(_LABEL):
            return sqlite_risk.customer_risk(self._connection(), customer_id)

    def kpis(self, query: KpiQuery) -> KpiReport:
        """Every KPI of the period per group, read from one snapshot of the fact tables."""
        conn = self._connection()
        with translated(_LABEL):
            conn.execute("BEGIN")  # WAL: every SELECT below sees the same committed state
            try:
                return sqlite_kpis.read_kpis(conn, query)
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")


def _migrate(conn: sqlite3.Connection) -> None:
    """Create what is missing; rebuild a projection whose schema version changed, alone.

    Views are derived data: dropping a projection's tables also drops its checkpoints, and the
    projector refills it from event 0 of the event store.
    """
    layout = conn.execute("PRAGMA user_version").fetchone()[0]
    if layout not in (0, LAYOUT_VERSION):
        log.warning("view store layout %d is not %d; rebuilding every view", layout, LAYOUT_VERSION)
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for name in names:
            conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(TRACKING_SCHEMA)
    conn.execute(
        "CREATE TABLE IF NOT EXISTS projection_versions"
        " (projection TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    versions = dict(conn.execute("SELECT projection, version FROM projection_versions"))
    for projection in PROJECTIONS:
        tables = _TABLES[projection.name]
        stored = versions.get(projection.name)
        if stored is not None and stored != projection.schema_version:
            log.warning(
                "projection %s has schema %d, the code %d; rebuilding it from event 0",
                projection.name,
                stored,
                projection.schema_version,
            )
            for table in tables.names:
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            forget_checkpoints(conn, projection.name)
        for statement in tables.schema:
            conn.execute(statement)
        conn.execute(
            "INSERT OR REPLACE INTO projection_versions (projection, version) VALUES (?, ?)",
            (projection.name, projection.schema_version),
        )
    conn.execute(f"PRAGMA user_version = {LAYOUT_VERSION}")
