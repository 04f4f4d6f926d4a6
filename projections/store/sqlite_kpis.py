"""The KPI facts projection's tables in the SQLite view store (read by kpi_reads.py).

Fact rows of single events are keyed by event or feedback id and inserted once, so redelivery never
doubles them; a case's row is replaced as its view changes. The projection keeps its own copy of
each case's view (`kpi_case_views`), so it depends on no other projection's progress.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import fields
from operator import attrgetter
from typing import Any

from projections.case_view import CaseView
from projections.catalogue import Batch
from projections.kpis import CaseFact, ContactFact, PurchaseFact, SurveyFact, kpi_changes
from projections.store.remembered import Remembered
from projections.store.rows import encode_view
from projections.store.sqlite_cases import loader

TABLES = ("kpi_contacts", "kpi_surveys", "kpi_purchases", "kpi_cases", "kpi_case_views")
SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS kpi_contacts (
        event_id TEXT PRIMARY KEY,
        case_id TEXT NOT NULL,
        day TEXT NOT NULL,
        channel TEXT NOT NULL,
        direction TEXT NOT NULL,
        team TEXT NOT NULL,
        category TEXT NOT NULL,
        offered INTEGER NOT NULL,
        answered INTEGER NOT NULL,
        handled INTEGER NOT NULL,
        bot_session INTEGER NOT NULL,
        bot_resolved INTEGER NOT NULL,
        handed_over INTEGER NOT NULL,
        talk_seconds INTEGER NOT NULL,
        hold_seconds INTEGER NOT NULL,
        after_work_seconds INTEGER NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS kpi_contacts_by_day ON kpi_contacts (day)",
    """
    CREATE TABLE IF NOT EXISTS kpi_surveys (
        feedback_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        case_id TEXT NOT NULL,
        day TEXT NOT NULL,
        channel TEXT NOT NULL,
        csat INTEGER,
        nps INTEGER,
        ces INTEGER
    )
    """,
    "CREATE INDEX IF NOT EXISTS kpi_surveys_by_day ON kpi_surveys (day)",
    """
    CREATE TABLE IF NOT EXISTS kpi_purchases (
        event_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        day TEXT NOT NULL,
        kind TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS kpi_purchases_by_day ON kpi_purchases (day)",
    """
    CREATE TABLE IF NOT EXISTS kpi_cases (
        case_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        channel TEXT NOT NULL,
        category TEXT NOT NULL,
        team TEXT NOT NULL,
        opened_day TEXT NOT NULL,
        opened_utc TEXT NOT NULL,
        first_response_seconds REAL,
        resolved_day TEXT,
        resolution_seconds REAL,
        first_resolved_day TEXT,
        reopened INTEGER NOT NULL,
        fcr INTEGER NOT NULL,
        transfers INTEGER NOT NULL,
        escalated INTEGER NOT NULL,
        sla_outcome TEXT NOT NULL,
        sla_decided_day TEXT,
        inactive TEXT NOT NULL,
        done_utc TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS kpi_cases_by_opened ON kpi_cases (opened_utc)",
    "CREATE TABLE IF NOT EXISTS kpi_case_views (case_id TEXT PRIMARY KEY, view TEXT NOT NULL)",
)


def write(conn: sqlite3.Connection, news: Batch, kept: Remembered[CaseView] | None) -> None:
    """Write a batch's KPI facts; the caller holds the transaction. `kept` holds the
    projection's case views written before, during a rebuild."""
    changes = kpi_changes(news, loader(conn, "kpi_case_views", kept))
    if kept is not None:
        kept.keep(changes.case_views)
    _insert(conn, "kpi_contacts", ContactFact, changes.contacts, "OR IGNORE")
    _insert(conn, "kpi_surveys", SurveyFact, changes.surveys, "OR IGNORE")
    _insert(conn, "kpi_purchases", PurchaseFact, changes.purchases, "OR IGNORE")
    _insert(conn, "kpi_cases", CaseFact, changes.cases, "OR REPLACE")
    conn.executemany(
        "INSERT OR REPLACE INTO kpi_case_views (case_id, view) VALUES (?, ?)",
        [(view.case_id, encode_view(view)) for view in changes.case_views.values()],
    )


def _insert(
    conn: sqlite3.Connection, table: str, cls: type[Any], rows: Iterable[Any], conflict: str
) -> None:
    names = [f.name for f in fields(cls)]
    values = attrgetter(*names)  # the fields are plain values: no deep copy as astuple makes
    conn.executemany(
        f"INSERT {conflict} INTO {table} ({', '.join(names)})"
        f" VALUES ({', '.join('?' * len(names))})",
        [values(row) for row in rows],
    )
