"""The embedded read store: one SQLite file in WAL mode, views and checkpoints side by side.

Each batch is written under the database's write lock (BEGIN IMMEDIATE) together with its
projection's checkpoint, so a reader never sees views ahead of or behind the recorded position.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

from crm.eventcodec import from_plain, to_plain
from crm.instants import sortable_instant
from crm.readstore.port import (
    Batch,
    EscalationQuery,
    ReadStore,
    TimelinePage,
    TimelineQuery,
    checkpoint_key,
    encode_page_token,
    fold_views,
)
from crm.readstore.sqlite_kpis import KPI_SCHEMA, read_kpis, write_kpi_facts
from crm.sqlite_connections import ThreadConnections, immediate, translated
from projections.case_view import CaseView
from projections.kpi_report import KpiQuery, KpiReport
from projections.risk import CustomerRisk
from projections.timeline import EntryKind, TimelineEntry

SCHEMA_VERSION = 5  # 3: KPI facts; 4: hand-overs set the team; 5: reasons with their start
log = logging.getLogger(__name__)

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS timeline (
        event_id TEXT PRIMARY KEY,
        global_position INTEGER NOT NULL,
        customer_id TEXT NOT NULL,
        case_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        event_type TEXT NOT NULL,
        channel TEXT NOT NULL,
        direction TEXT NOT NULL,
        actor TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        occurred_utc TEXT NOT NULL,
        summary TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS timeline_by_customer ON timeline (customer_id, global_position)",
    # The whole view as JSON, plus the columns lists filter and order by.
    """
    CREATE TABLE IF NOT EXISTS case_views (
        case_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        status TEXT NOT NULL,
        team TEXT NOT NULL,
        escalation_level INTEGER NOT NULL,
        escalated_since TEXT,
        next_due_utc TEXT,
        view TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS case_views_by_level ON case_views (escalation_level)",
    """
    CREATE TABLE IF NOT EXISTS feedback_signals (
        feedback_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        case_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        global_position INTEGER NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS signals_by_customer"
    " ON feedback_signals (customer_id, global_position)",
    "CREATE INDEX IF NOT EXISTS case_views_by_customer ON case_views (customer_id)",
    """
    CREATE TABLE IF NOT EXISTS customer_merges (
        duplicate_id TEXT PRIMARY KEY,
        survivor_id TEXT NOT NULL,
        merge_id TEXT NOT NULL,
        active INTEGER NOT NULL,
        position INTEGER NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS merges_by_survivor ON customer_merges (survivor_id, active)",
    """
    CREATE TABLE IF NOT EXISTS checkpoints (
        projection TEXT PRIMARY KEY,
        position INTEGER NOT NULL
    )
    """,
    *KPI_SCHEMA,
)

# The customer and, recursively, every profile currently merged into it. UNION (not UNION ALL)
# drops rows already seen, so even a cycle of links terminates.
_MEMBERS = """
    WITH RECURSIVE members(id) AS (
        SELECT ?
        UNION
        SELECT m.duplicate_id FROM customer_merges m JOIN members ON m.survivor_id = members.id
        WHERE m.active = 1
    )
"""

_ENTRY_COLUMNS = (
    "event_id, global_position, customer_id, case_id, kind, event_type, channel, direction,"
    " actor, occurred_at, summary"
)


def _translated() -> AbstractContextManager[None]:
    return translated("sqlite read store")


class SqliteReadStore(ReadStore):
    """Read store in one SQLite file; one connection per thread, as gRPC serves from a pool."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self._path = Path(path)
        self._connections = ThreadConnections(self._path, "sqlite read store")
        conn = self._connection()
        with _translated():
            conn.execute("PRAGMA journal_mode=WAL")
            with immediate(conn):
                _migrate(conn)

    def _connection(self) -> sqlite3.Connection:
        with _translated():
            return self._connections.get()

    def close(self) -> None:
        """Close every thread's connection; the store is unusable afterwards."""
        self._connections.close()

    def checkpoint(self, projection: str, source: str = "") -> int:
        """The global position of the last event `projection` applied from `source`, 0 if none."""
        key = checkpoint_key(projection, source)
        with _translated():
            return _checkpoint(self._connection(), key)

    def apply(self, projection: str, batch: Batch, source: str = "") -> None:
        """Write the batch's view changes and the new checkpoint in one transaction."""
        key = checkpoint_key(projection, source)
        if not batch:
            return
        conn = self._connection()
        with _translated(), immediate(conn):
            checkpoint = _checkpoint(conn, key)
            changes = fold_views(batch, checkpoint, lambda case_id: _case_view(conn, case_id))
            if changes.position == checkpoint:
                return  # everything was applied before
            conn.executemany(
                f"INSERT INTO timeline ({_ENTRY_COLUMNS}, occurred_utc)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
                [
                    (*_entry_row(entry), sortable_instant(entry.occurred_at))
                    for entry in changes.entries
                ],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO case_views (case_id, customer_id, status, team,"
                " escalation_level, escalated_since, next_due_utc, view)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [_case_row(view) for view in changes.case_views.values()],
            )
            conn.executemany(
                "INSERT OR IGNORE INTO feedback_signals"
                " (feedback_id, customer_id, case_id, reason, global_position)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (s.feedback_id, s.customer_id, s.case_id, s.reason, s.position)
                    for s in changes.feedback_signals
                ],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO customer_merges"
                " (duplicate_id, survivor_id, merge_id, active, position) VALUES (?, ?, ?, ?, ?)",
                [
                    (
                        link.duplicate_id,
                        link.survivor_id,
                        link.merge_id,
                        int(link.active),
                        link.position,
                    )
                    for link in changes.merge_links.values()
                ],
            )
            write_kpi_facts(conn, changes)
            conn.execute(
                "INSERT INTO checkpoints (projection, position) VALUES (?, ?)"
                " ON CONFLICT (projection) DO UPDATE SET position = excluded.position",
                (key, changes.position),
            )

    def timeline(self, query: TimelineQuery) -> TimelinePage:
        """One page of the timeline; the token carries the last position handed out."""
        conditions: list[str] = []
        params: list[Any] = [query.customer_id]
        after = query.after_position
        if after:
            conditions.append(
                "global_position < ?" if query.newest_first else "global_position > ?"
            )
            params.append(after)
        for column, values in (("channel", query.channels), ("kind", query.kinds)):
            if values:
                conditions.append(f"{column} IN ({', '.join('?' * len(values))})")
                params.extend(sorted(values))
        if query.case_id:
            conditions.append("case_id = ?")
            params.append(query.case_id)
        if query.since is not None:
            conditions.append("occurred_utc >= ?")
            params.append(sortable_instant(query.since))
        if query.until is not None:
            conditions.append("occurred_utc < ?")
            params.append(sortable_instant(query.until))
        order = "DESC" if query.newest_first else "ASC"
        params.append(query.page_size + 1)
        rows = self._entries(
            " ".join(f"AND {condition}" for condition in conditions),
            f"ORDER BY global_position {order} LIMIT ?",
            params,
        )
        entries = [_entry(row) for row in rows[: query.page_size]]
        more = len(rows) > query.page_size
        return TimelinePage(entries, encode_page_token(entries[-1].global_position) if more else "")

    def entries_after(
        self, customer_id: str, after_position: int, limit: int
    ) -> list[TimelineEntry]:
        """Entries of the customer (merged duplicates included) after a position, oldest first."""
        rows = self._entries(
            "AND global_position > ?",
            "ORDER BY global_position ASC LIMIT ?",
            [customer_id, after_position, max(limit, 0)],
        )
        return [_entry(row) for row in rows]

    def timeline_watermark(self) -> int:
        """The newest rowid of the timeline: rowids grow in the order entries are written."""
        with _translated():
            row = self._connection().execute("SELECT COALESCE(MAX(rowid), 0) FROM timeline")
            return int(row.fetchone()[0])

    def entries_applied_after(
        self, customer_id: str, after_sequence: int, limit: int
    ) -> tuple[list[TimelineEntry], int]:
        """Entries of the customer (merged duplicates included) written after a rowid."""
        sql = (
            f"{_MEMBERS} SELECT rowid, {_ENTRY_COLUMNS} FROM timeline"
            " WHERE customer_id IN (SELECT id FROM members) AND rowid > ? ORDER BY rowid LIMIT ?"
        )
        with _translated():
            rows = self._connection().execute(sql, [customer_id, after_sequence, limit]).fetchall()
        last = int(rows[-1][0]) if rows else after_sequence
        return [_entry(row[1:]) for row in rows], last

    def _entries(self, conditions: str, order: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        sql = (
            f"{_MEMBERS} SELECT {_ENTRY_COLUMNS} FROM timeline"
            f" WHERE customer_id IN (SELECT id FROM members) {conditions} {order}"
        )
        with _translated():
            return self._connection().execute(sql, params).fetchall()

    def case_view(self, case_id: str) -> CaseView | None:
        """The case's current view, None if no event of it was applied."""
        with _translated():
            return _case_view(self._connection(), case_id)

    def escalated_cases(self, query: EscalationQuery) -> list[CaseView]:
        """Escalated cases, most urgent first: highest level, nearest SLA due, longest escalated."""
        conditions = ["escalation_level >= ?"]
        params: list[Any] = [query.min_level]
        if query.team:
            conditions.append("team = ?")
            params.append(query.team)
        if query.reason:
            conditions.append(
                "EXISTS (SELECT 1 FROM json_each(view, '$.escalation_reasons')"
                " WHERE json_extract(value, '$.reason') = ?)"
            )
            params.append(query.reason)
        if query.escalated_before is not None:
            conditions.append("escalated_since <= ?")
            params.append(sortable_instant(query.escalated_before))
        sql = (
            f"SELECT view FROM case_views WHERE {' AND '.join(conditions)}"
            " ORDER BY escalation_level DESC, next_due_utc IS NULL, next_due_utc,"
            " escalated_since, case_id LIMIT ?"
        )
        with _translated():
            rows = self._connection().execute(sql, [*params, query.limit]).fetchall()
        return [_case(row[0]) for row in rows]

    def kpis(self, query: KpiQuery) -> KpiReport:
        """Every KPI of the period per group, read from one snapshot of the fact tables."""
        conn = self._connection()
        with _translated():
            conn.execute("BEGIN")  # WAL: every SELECT below sees the same committed state
            try:
                return read_kpis(conn, query)
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")

    def customer_risk(self, customer_id: str) -> CustomerRisk:
        """At risk while a case is escalated or the latest feedback is negative; profiles merged
        into the customer count, as their histories show on its timeline."""
        conn = self._connection()
        with _translated():
            cases = conn.execute(
                f"{_MEMBERS} SELECT case_id, escalation_level FROM case_views"
                " WHERE customer_id IN (SELECT id FROM members) AND escalation_level > 0"
                " ORDER BY escalation_level DESC, escalated_since, case_id",
                (customer_id,),
            ).fetchall()
            latest = conn.execute(
                f"{_MEMBERS} SELECT reason FROM feedback_signals"
                " WHERE customer_id IN (SELECT id FROM members)"
                " ORDER BY global_position DESC LIMIT 1",
                (customer_id,),
            ).fetchone()
        return CustomerRisk(
            customer_id,
            tuple((case_id, int(level)) for case_id, level in cases),
            "" if latest is None else str(latest[0]),
        )


def _checkpoint(conn: sqlite3.Connection, projection: str) -> int:
    row = conn.execute("SELECT position FROM checkpoints WHERE projection = ?", (projection,))
    found = row.fetchone()
    return 0 if found is None else int(found[0])


def _case_view(conn: sqlite3.Connection, case_id: str) -> CaseView | None:
    row = conn.execute("SELECT view FROM case_views WHERE case_id = ?", (case_id,))
    found = row.fetchone()
    return None if found is None else _case(found[0])


def _entry_row(entry: TimelineEntry) -> tuple[Any, ...]:
    return (
        entry.event_id,
        entry.global_position,
        entry.customer_id,
        entry.case_id,
        entry.kind.value,
        entry.event_type,
        entry.channel,
        entry.direction,
        entry.actor,
        entry.occurred_at.isoformat(),
        entry.summary,
    )


def _entry(row: tuple[Any, ...]) -> TimelineEntry:
    event_id, position, customer_id, case_id, kind, event_type = row[:6]
    channel, direction, actor, occurred_at, summary = row[6:]
    return TimelineEntry(
        event_id=event_id,
        global_position=position,
        customer_id=customer_id,
        case_id=case_id,
        kind=EntryKind(kind),
        event_type=event_type,
        channel=channel,
        direction=direction,
        actor=actor,
        occurred_at=datetime.fromisoformat(occurred_at),
        summary=summary,
    )


def _case_row(view: CaseView) -> tuple[Any, ...]:
    next_due = view.next_due_at
    return (
        view.case_id,
        view.customer_id,
        view.status.value,
        view.team,
        view.escalation_level,
        None if view.escalated_since is None else sortable_instant(view.escalated_since),
        None if next_due is None else sortable_instant(next_due),
        json.dumps(to_plain(view), sort_keys=True),
    )


def _case(text: str) -> CaseView:
    view: CaseView = from_plain(CaseView, json.loads(text))
    return view


def _migrate(conn: sqlite3.Connection) -> None:
    """Create the schema; a read store of another schema version is dropped and rebuilt.

    Views are derived data: the projector refills them from event 0 of the event store, since
    dropping the tables also drops the checkpoints.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version not in (0, SCHEMA_VERSION):
        log.warning("read store schema %d is not %d; rebuilding views", version, SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    for statement in _SCHEMA:
        conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
