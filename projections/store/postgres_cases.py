"""The case views projection's tables in the PostgreSQL view store: one view per case, the list of
escalated cases supervisors work from, and negative feedback by case for their follow-up list.

The same rows as projections/store/sqlite_cases.py; the reads are case_reads.py's, given
PostgreSQL's JSON functions and NULL ordering here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psycopg import Connection

from crm.instants import sortable_instant
from projections.case_view import CaseView, case_view_changes
from projections.catalogue import Batch
from projections.follow_ups import negative_feedback
from projections.store import case_reads
from projections.store.postgres_schema import Migration
from projections.store.postgres_timeline import DIALECT
from projections.store.queries import EscalationQuery
from projections.store.remembered import Remembered
from projections.store.rows import case_row

TABLES = ("case_views", "case_feedback")
# The whole view as JSON, plus the columns lists filter and order by.
MIGRATIONS = (
    Migration(
        "case views and negative feedback by case",
        (
            """
            CREATE TABLE case_views (
                case_id TEXT COLLATE "C" PRIMARY KEY,
                customer_id TEXT COLLATE "C" NOT NULL,
                status TEXT COLLATE "C" NOT NULL,
                team TEXT COLLATE "C" NOT NULL,
                escalation_level INTEGER NOT NULL,
                escalated_since TEXT COLLATE "C",
                next_due_utc TEXT COLLATE "C",
                settled_position BIGINT NOT NULL,
                view TEXT NOT NULL
            )
            """,
            """
            CREATE TABLE case_feedback (
                feedback_id TEXT COLLATE "C" PRIMARY KEY,
                case_id TEXT COLLATE "C" NOT NULL,
                negativity TEXT COLLATE "C" NOT NULL,
                occurred_at TEXT COLLATE "C" NOT NULL,
                occurred_utc TEXT COLLATE "C" NOT NULL,
                global_position BIGINT NOT NULL
            )
            """,
            "CREATE INDEX case_feedback_by_case ON case_feedback (case_id, global_position)",
            "CREATE INDEX case_views_by_status ON case_views (status)",
            "CREATE INDEX case_views_by_level ON case_views (escalation_level)",
            "CREATE INDEX case_views_by_customer ON case_views (customer_id)",
        ),
    ),
)


def write(conn: Connection[Any], news: Batch, kept: Remembered[CaseView] | None) -> None:
    """Write a batch's case views and negative feedback by case; `kept` holds views written
    before, during a rebuild."""
    views = case_view_changes(news, loader(conn, "case_views", kept))
    if kept is not None:
        kept.keep(views)
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO case_views (case_id, customer_id, status, team, escalation_level,"
            " escalated_since, next_due_utc, settled_position, view)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (case_id) DO UPDATE SET"
            " customer_id = EXCLUDED.customer_id, status = EXCLUDED.status,"
            " team = EXCLUDED.team, escalation_level = EXCLUDED.escalation_level,"
            " escalated_since = EXCLUDED.escalated_since, next_due_utc = EXCLUDED.next_due_utc,"
            " settled_position = EXCLUDED.settled_position, view = EXCLUDED.view",
            [case_row(view) for view in views.values()],
        )
        cursor.executemany(
            "INSERT INTO case_feedback (feedback_id, case_id, negativity, occurred_at,"
            " occurred_utc, global_position) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (feedback_id) DO NOTHING",
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
    conn: Connection[Any], table: str, kept: Remembered[CaseView] | None
) -> Callable[[str], CaseView | None]:
    """How a batch loads a case's stored view: from what is kept first, when anything is."""

    def read(case_id: str) -> CaseView | None:
        return case_view(conn, case_id, table)

    return read if kept is None else kept.loader(read)


def case_view(conn: Connection[Any], case_id: str, table: str) -> CaseView | None:
    """A stored view from `table` (the case views projection's, or the KPI facts' own copy)."""
    return case_reads.case_view(DIALECT, conn, case_id, table)


_HAS_REASON = (
    "EXISTS (SELECT 1 FROM jsonb_array_elements(view::jsonb -> 'escalation_reasons') r"
    " WHERE r ->> 'reason' = ?)"
)
"""An escalated case one of whose reasons is the parameter (marked `?`)."""
# NULLS placed as SQLite places them: a case without a due date after those with one.
_URGENCY = (
    "escalation_level DESC, next_due_utc ASC NULLS LAST, escalated_since ASC NULLS FIRST, case_id"
)
"""Most urgent first: highest level, nearest SLA due, longest escalated."""


def escalated(conn: Connection[Any], query: EscalationQuery) -> list[CaseView]:
    """Escalated cases, most urgent first: highest level, nearest SLA due, longest escalated."""
    return case_reads.escalated(DIALECT, conn, query, has_reason=_HAS_REASON, urgency=_URGENCY)
