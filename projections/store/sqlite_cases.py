"""The case views projection's table in the SQLite view store: one view per case, and the list
of escalated cases supervisors work from."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from crm.eventcodec import from_plain, to_plain
from crm.instants import sortable_instant
from projections.case_view import CaseView, case_view_changes
from projections.catalogue import Batch
from projections.store.queries import EscalationQuery
from projections.store.remembered import Remembered

TABLES = ("case_views",)
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
        view TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS case_views_by_level ON case_views (escalation_level)",
    "CREATE INDEX IF NOT EXISTS case_views_by_customer ON case_views (customer_id)",
)


def write(conn: sqlite3.Connection, news: Batch, kept: Remembered[CaseView] | None) -> None:
    """Write a batch's case views; `kept` holds views written before, during a rebuild."""
    views = case_view_changes(news, loader(conn, "case_views", kept))
    if kept is not None:
        kept.keep(views)
    conn.executemany(
        "INSERT OR REPLACE INTO case_views (case_id, customer_id, status, team,"
        " escalation_level, escalated_since, next_due_utc, view) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [_row(view) for view in views.values()],
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
    found = conn.execute(f"SELECT view FROM {table} WHERE case_id = ?", (case_id,)).fetchone()
    return None if found is None else decode_view(found[0])


def escalated(conn: sqlite3.Connection, query: EscalationQuery) -> list[CaseView]:
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
    rows = conn.execute(sql, [*params, query.limit]).fetchall()
    return [decode_view(row[0]) for row in rows]


def encode_view(view: CaseView) -> str:
    return json.dumps(to_plain(view), sort_keys=True)


def decode_view(text: str) -> CaseView:
    view: CaseView = from_plain(CaseView, json.loads(text))
    return view


def _row(view: CaseView) -> tuple[Any, ...]:
    next_due = view.next_due_at
    return (
        view.case_id,
        view.customer_id,
        view.status.value,
        view.team,
        view.escalation_level,
        None if view.escalated_since is None else sortable_instant(view.escalated_since),
        None if next_due is None else sortable_instant(next_due),
        encode_view(view),
    )
