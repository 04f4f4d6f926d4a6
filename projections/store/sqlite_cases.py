"""The case views projection's tables in the SQLite view store: one view per case, the list of
escalated cases supervisors work from, and negative feedback by case for their follow-up list.

The reads are case_reads.py's; this module gives them SQLite's JSON and NULL ordering.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from crm.instants import sortable_instant
from projections.case_view import CaseView, case_view_changes
from projections.catalogue import Batch
from projections.follow_ups import negative_feedback
from projections.store import case_reads
from projections.store.queries import EscalationQuery
from projections.store.remembered import Remembered
from projections.store.rows import case_row
from projections.store.sqlite_timeline import DIALECT

TABLES = ("case_views", "case_feedback")
# The whole view as JSON, plus the columns lists filter and order by.
SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS case_views (
        case_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        status TEXT NOT NULL,
        team TEXT NOT NULL,
        escalation_level INTEGER NOT NULL,
        escalated_since TEXT,
        next_due_utc TEXT,
        settled_position INTEGER NOT NULL,
        view TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS case_feedback (
        feedback_id TEXT PRIMARY KEY,
        case_id TEXT NOT NULL,
        negativity TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        occurred_utc TEXT NOT NULL,
        global_position INTEGER NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS case_feedback_by_case ON case_feedback (case_id, global_position)",
    "CREATE INDEX IF NOT EXISTS case_views_by_status ON case_views (status)",
    "CREATE INDEX IF NOT EXISTS case_views_by_level ON case_views (escalation_level)",
    "CREATE INDEX IF NOT EXISTS case_views_by_customer ON case_views (customer_id)",
)


def write(conn: sqlite3.Connection, news: Batch, kept: Remembered[CaseView] | None) -> None:
    """Write a batch's case views and negative feedback by case; `kept` holds views written
    before, during a rebuild."""
    views = case_view_changes(news, loader(conn, "case_views", kept))
    if kept is not None:
        kept.keep(views)
    conn.executemany(
        "INSERT OR REPLACE INTO case_views (case_id, customer_id, status, team,"
        " escalation_level, escalated_since, next_due_utc, settled_position, view)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [case_row(view) for view in views.values()],
    )
    conn.executemany(
        "INSERT INTO case_feedback (feedback_id, case_id, negativity, occurred_at, occurred_utc,"
        " global_position) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (feedback_id) DO NOTHING",
        [
            (
                f.feedback_id,
                case_id,
                f.negativity.value,
                f.at.isoformat(),
                sortable_instant(f.at),
                f.global_position,
            )
            for case_id, f in negative_feedback(news)
        ],
    )


def loader(
    conn: sqlite3.Connection, table: str, kept: Remembered[CaseView] | None
) -> Callable[[str], CaseView | None]:
    """How a batch loads a case's stored view: from what is kept first, when anything is."""

    def read(case_id: str) -> CaseView | None:
        return case_view(conn, case_id, table)

    return read if kept is None else kept.loader(read)


def case_view(conn: sqlite3.Connection, case_id: str, table: str) -> CaseView | None:
    """A stored view from `table` (the case views projection's, or the KPI facts' own copy)."""
    return case_reads.case_view(DIALECT, conn, case_id, table)


_HAS_REASON = (
    "EXISTS (SELECT 1 FROM json_each(view, '$.escalation_reasons')"
    " WHERE json_extract(value, '$.reason') = ?)"
)
"""An escalated case one of whose reasons is the parameter (marked `?`)."""
_URGENCY = "escalation_level DESC, next_due_utc IS NULL, next_due_utc, escalated_since, case_id"
"""Most urgent first: highest level, nearest SLA due, longest escalated."""


def escalated(conn: sqlite3.Connection, query: EscalationQuery) -> list[CaseView]:
    """Escalated cases, most urgent first: highest level, nearest SLA due, longest escalated."""
    return case_reads.escalated(DIALECT, conn, query, has_reason=_HAS_REASON, urgency=_URGENCY)
