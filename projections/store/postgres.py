"""The view store on PostgreSQL: every projection's tables in one database, for several servers
and workers on several machines.

The same port and semantics as the SQLite adapter (projections/store/sqlite.py): a batch's view
changes and the checkpoints of the projections it applies commit in one transaction. Writers of
one projection take its advisory lock for their transaction, so they follow one another as under
SQLite's write lock (a batch reads the views it folds into) while different projections write side
by side and readers never wait. Opening the store migrates it (postgres_schema.py beside this
module); each applied batch notifies other processes (postgres_listen.py).
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from psycopg_pool import ConnectionPool

from crm.errors import InvalidInput
from crm.postgres_connections import open_pool, translated
from crm.postgres_tracking import read_checkpoint, read_checkpoints, write_checkpoint
from projections.case_view import CaseView
from projections.catalogue import (
    CASE_VIEWS,
    CUSTOMER_RISK,
    KPI_FACTS,
    PROJECTION_NAMES,
    PROJECTIONS,
    TIMELINE,
    Batch,
    Projection,
    news,
    projection_named,
)
from projections.follow_ups import FollowUp
from projections.kpi_report import KpiQuery, KpiReport
from projections.risk import CustomerRisk
from projections.store import postgres_cases, postgres_kpis, postgres_risk, postgres_timeline
from projections.store.port import ViewStore
from projections.store.postgres_listen import CHANNEL, ChangeListener
from projections.store.postgres_schema import Migrated, Migration, ProjectionTables, migrate
from projections.store.queries import (
    EscalationQuery,
    FollowUpQuery,
    TimelinePage,
    TimelineQuery,
)
from projections.store.remembered import Remembered
from projections.timeline import TimelineEntry

_LABEL = "postgresql view store"
POOL_SIZE = 16
"""Connections per store: as many as the gRPC server's store threads, so reads never queue."""
LISTEN_START_SECONDS = 10.0


_MODULES: dict[str, ModuleType] = {  # each: TABLES, MIGRATIONS, write(conn, news, kept)
    TIMELINE.name: postgres_timeline,
    CASE_VIEWS.name: postgres_cases,
    CUSTOMER_RISK.name: postgres_risk,
    KPI_FACTS.name: postgres_kpis,
}


def projection_tables(
    projections: Sequence[Projection] = PROJECTIONS,
    extra: Mapping[str, tuple[Migration, ...]] | None = None,
) -> tuple[ProjectionTables, ...]:
    """Each projection's tables and migrations as this code knows them; `extra` appends steps
    (tests use it to play a later release)."""
    return tuple(
        ProjectionTables(
            projection,
            _MODULES[projection.name].TABLES,
            _MODULES[projection.name].MIGRATIONS + (extra or {}).get(projection.name, ()),
        )
        for projection in projections
    )


def projection_lock_key(projection: str) -> int:
    """The advisory lock a writer of `projection` holds for its transaction: a stable 64-bit
    key, the same in every process."""
    digest = hashlib.sha256(f"crm view store {projection}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresViewStore(ViewStore):
    """View store in one PostgreSQL database, through a pool of connections."""

    def __init__(
        self,
        url: str,
        *,
        field: str = "read_store_url",
        tables: Sequence[ProjectionTables] | None = None,
        pool_size: int = POOL_SIZE,
    ) -> None:
        """Open (a malformed or unreachable URL is InvalidInput naming `field`) and migrate."""
        super().__init__()
        self._url = url
        self._token = uuid.uuid4().hex
        self._listener: ChangeListener | None = None
        self._replaying = threading.local()  # this thread's kept values, while it replays
        self._pool: ConnectionPool = open_pool(url, field, label=_LABEL, max_size=pool_size)
        try:
            with translated(_LABEL), self._pool.connection() as conn, conn.transaction():
                self.migrated: Migrated = migrate(conn, tables or projection_tables())
        except BaseException:
            self._pool.close()
            raise

    def listen_across_processes(self) -> None:
        """Wake this process's watchers when another process applies a batch (LISTEN/NOTIFY)."""
        if self._listener is None:
            self._listener = ChangeListener(self._url, self._token, self.notify_changed, _LABEL)
            self._listener.start(LISTEN_START_SECONDS)

    def close(self) -> None:
        """Stop listening and close the pool; the store is unusable afterwards."""
        if self._listener is not None:
            self._listener.stop(self._send_notification, LISTEN_START_SECONDS)
            self._listener = None
        self._pool.close()
        super().close()

    def _send_notification(self) -> None:
        with self._pool.connection() as conn:
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self._token))

    def checkpoint(self, consumer: str, source: str = "") -> int:
        """The global position of the last event `consumer` applied from `source`, 0 if none."""
        projection_named(consumer)
        with translated(_LABEL), self._pool.connection() as conn:
            return read_checkpoint(conn, consumer, source)

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
        names = sorted(set(projections))
        kept_by_name: dict[str, Remembered[Any]] | None = getattr(self._replaying, "kept", None)
        # Pipeline mode: writes travel together, only reads (checkpoints, views folded into)
        # and the commit wait for the server.
        with (
            translated(_LABEL),
            self._pool.connection() as conn,
            conn.pipeline(),
            conn.transaction(),
        ):
            conn.execute(  # in the order of the keys in every process: no deadlock
                "SELECT pg_advisory_xact_lock(key) FROM"
                " (SELECT key FROM unnest(%s::bigint[]) AS key ORDER BY key) AS keys",
                ([projection_lock_key(name) for name in names],),
            )
            checkpoints = read_checkpoints(conn, names, source)
            wrote = False
            for name in names:
                checkpoint = checkpoints[name]
                fresh = news(batch, checkpoint)
                if not fresh:
                    continue
                kept = None if kept_by_name is None else kept_by_name[name]
                if kept is not None and kept.position != checkpoint:
                    kept.forget()  # someone else wrote this projection: trust only the tables
                position = fresh[-1][0].global_position
                _MODULES[name].write(conn, fresh, kept)
                write_checkpoint(conn, name, source, position)
                if kept is not None:
                    kept.position = position
                wrote = True
            if wrote:  # delivered at commit, to every listening process
                conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self._token))

    @contextmanager
    def replaying(self) -> Iterator[None]:
        """Keep what this thread writes for its next batches instead of reading it back.

        Values kept are trusted only while the projection's checkpoint is the one this thread
        left (checked in each transaction, under the projection's lock), so another writer can
        never make them stale.
        """
        self._replaying.kept = {name: Remembered[Any]() for name in _MODULES}
        try:
            yield
        finally:
            del self._replaying.kept

    def timeline(self, query: TimelineQuery) -> TimelinePage:
        with translated(_LABEL), self._pool.connection() as conn:
            return postgres_timeline.page(conn, query)

    def timeline_members(self, customer_id: str) -> frozenset[str]:
        with translated(_LABEL), self._pool.connection() as conn:
            return postgres_timeline.members(conn, customer_id)

    def entries_after(
        self, customer_id: str, after_position: int, limit: int
    ) -> list[TimelineEntry]:
        with translated(_LABEL), self._pool.connection() as conn:
            return postgres_timeline.entries_after(conn, customer_id, after_position, limit)

    def timeline_watermark(self) -> int:
        with translated(_LABEL), self._pool.connection() as conn:
            return postgres_timeline.watermark(conn)

    def writers_after(self, after_sequence: int, limit: int) -> list[tuple[int, str, str]]:
        with translated(_LABEL), self._pool.connection() as conn:
            return postgres_timeline.writers_after(conn, after_sequence, limit)

    def entries_applied_after(
        self, customer_id: str, after_sequence: int, limit: int
    ) -> tuple[list[TimelineEntry], int]:
        with translated(_LABEL), self._pool.connection() as conn:
            return postgres_timeline.entries_applied_after(conn, customer_id, after_sequence, limit)

    def case_view(self, case_id: str) -> CaseView | None:
        with translated(_LABEL), self._pool.connection() as conn:
            return postgres_cases.case_view(conn, case_id, "case_views")

    def escalated_cases(self, query: EscalationQuery) -> list[CaseView]:
        with translated(_LABEL), self._pool.connection() as conn:
            return postgres_cases.escalated(conn, query)

    def follow_ups(self, query: FollowUpQuery) -> list[FollowUp]:
        with translated(_LABEL), self._pool.connection() as conn:
            return postgres_cases.follow_ups(conn, query)

    def customer_risk(self, customer_id: str) -> CustomerRisk:
        with translated(_LABEL), self._pool.connection() as conn:
            return postgres_risk.customer_risk(conn, customer_id)

    def kpis(self, query: KpiQuery) -> KpiReport:
        """Every KPI of the period per group, read from one snapshot of the fact tables."""
        with translated(_LABEL), self._pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            return postgres_kpis.read_kpis(conn, query)
