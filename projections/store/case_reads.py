"""The case views' reads both view stores run alike: a stored view, and the supervisors'
follow-up list with the negative feedback behind it.

One copy for SQLite and PostgreSQL (projections/store/dialect.py); the tables, their writes and
the escalation list (JSON functions, NULL ordering) stay in sqlite_cases.py and postgres_cases.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm.instants import sortable_instant
from projections.case_view import CaseView
from projections.follow_ups import FollowUp, NegativeFeedback, follow_up
from projections.store.dialect import Connection, Dialect
from projections.store.queries import EscalationQuery, FollowUpQuery
from projections.store.rows import decode_view
from services.feedback.domain import Negativity


def case_view(dialect: Dialect, conn: Connection, case_id: str, table: str) -> CaseView | None:
    """A stored view from `table` (the case views projection's, or the KPI facts' own copy)."""
    found = dialect.row(conn, f"SELECT view FROM {table} WHERE case_id = ?", (case_id,))
    return None if found is None else decode_view(found[0])


def escalated(
    dialect: Dialect, conn: Connection, query: EscalationQuery, *, has_reason: str, urgency: str
) -> list[CaseView]:
    """Escalated cases in the `urgency` order; `has_reason`: the dialect's condition (JSON
    functions differ) that one of a case's escalation reasons is the parameter."""
    conditions = ["escalation_level >= ?"]
    params: list[Any] = [query.min_level]
    if query.team:
        conditions.append("team = ?")
        params.append(query.team)
    if query.reason:
        conditions.append(has_reason)
        params.append(query.reason)
    if query.escalated_before is not None:
        conditions.append("escalated_since <= ?")
        params.append(sortable_instant(query.escalated_before))
    sql = f"SELECT view FROM case_views WHERE {' AND '.join(conditions)} ORDER BY {urgency} LIMIT ?"
    rows = dialect.rows(conn, sql, [*params, query.limit])
    return [decode_view(row[0]) for row in rows]


def follow_ups(dialect: Dialect, conn: Connection, query: FollowUpQuery) -> list[FollowUp]:
    """The follow-up list, most recent feedback first: projections.follow_ups' rule in SQL to
    pick and order the cases (the conformance suite proves the two equal), then the rule itself."""
    conditions = ["v.status IN ('resolved', 'closed')"]
    params: list[Any] = []
    if query.team:
        conditions.append("v.team = ?")
        params.append(query.team)
    sql = (
        "SELECT v.case_id, v.view, MAX(f.occurred_utc) AS since FROM case_views v"
        " JOIN case_feedback f ON f.case_id = v.case_id"
        " AND f.global_position > v.settled_position"
        f" WHERE {' AND '.join(conditions)} GROUP BY v.case_id"
        " ORDER BY since DESC, v.case_id LIMIT ?"
    )
    listed = []
    for case_id, text, _since in dialect.rows(conn, sql, [*params, query.limit]):
        found = follow_up(decode_view(text), case_feedback(dialect, conn, case_id))
        if found is not None:
            listed.append(found)
    return listed


def case_feedback(dialect: Dialect, conn: Connection, case_id: str) -> list[NegativeFeedback]:
    """The negative feedback linked to a case, in global order."""
    rows = dialect.rows(
        conn,
        "SELECT feedback_id, negativity, occurred_at, global_position FROM case_feedback"
        " WHERE case_id = ? ORDER BY global_position",
        (case_id,),
    )
    return [
        NegativeFeedback(feedback_id, Negativity(negative), datetime.fromisoformat(at), position)
        for feedback_id, negative, at, position in rows
    ]
