"""The KPI facts projection's tables in the SQLite view store, read for the KPI report.

Fact rows of single events are keyed by event or feedback id and inserted once, so redelivery never
doubles them; a case's row is replaced as its view changes. The projection keeps its own copy of
each case's view (`kpi_case_views`), so it depends on no other projection's progress.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import fields
from operator import attrgetter
from typing import Any, TypeVar

from projections.case_view import CaseView
from projections.catalogue import Batch
from projections.kpi_report import KpiQuery, KpiReport
from projections.kpi_tally import build_report
from projections.kpis import CaseFact, ContactFact, PurchaseFact, SurveyFact, kpi_changes
from projections.store import sqlite_timeline
from projections.store.remembered import Remembered
from projections.store.rows import encode_view
from projections.store.sqlite_cases import loader

T = TypeVar("T")

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


def read_kpis(conn: sqlite3.Connection, query: KpiQuery) -> KpiReport:
    """Fetch the facts the period can touch and let the shared pure code add them up.

    The SQL only narrows by day (and cheap filters); build_report applies every rule itself.
    """
    since, until = query.since.isoformat(), query.until.isoformat()
    contacts = _select(
        conn, ContactFact, "kpi_contacts", *_filtered("day >= ? AND day < ?", [since, until], query)
    )
    surveys = [
        (_fact(SurveyFact, row[:-2]), str(row[-2]), str(row[-1]))
        for row in conn.execute(
            f"SELECT {_columns(SurveyFact, 's.')}, COALESCE(c.team, ''), COALESCE(c.category, '')"
            " FROM kpi_surveys s LEFT JOIN kpi_cases c ON c.case_id = s.case_id AND s.case_id != ''"
            " WHERE s.day >= ? AND s.day < ?",
            (since, until),
        )
    ]
    # Cases dated in the period one way or another, or possibly open at some day's end in it.
    touched = " OR ".join(
        f"({column} >= ? AND {column} < ?)"
        for column in ("opened_day", "resolved_day", "first_resolved_day", "sla_decided_day")
    )
    cases = _select(
        conn,
        CaseFact,
        "kpi_cases",
        *_filtered(
            f"({touched} OR (opened_utc < ? AND (done_utc IS NULL OR done_utc >= ?)))",
            [since, until] * 4 + [until, since],
            query,
        ),
    )
    purchases = _select(
        conn,
        PurchaseFact,
        "kpi_purchases",
        "day >= ? AND day < ?",
        [query.previous_since.isoformat(), until],
    )
    merges = sqlite_timeline.merged_into(conn)
    return build_report(
        query,
        contacts=contacts,
        surveys=surveys,
        cases=cases,
        purchases=purchases,
        merges=merges,
    )


def _filtered(condition: str, params: list[Any], query: KpiQuery) -> tuple[str, list[Any]]:
    """Add the query's channel, team and category filters to a condition on a fact table."""
    for column, wanted in (
        ("channel", query.channel),
        ("team", query.team),
        ("category", query.category),
    ):
        if wanted:
            condition += f" AND {column} = ?"
            params = [*params, wanted]
    return condition, params


def _columns(cls: type[Any], prefix: str = "") -> str:
    return ", ".join(prefix + f.name for f in fields(cls))


def _select(
    conn: sqlite3.Connection, cls: type[T], table: str, condition: str, params: list[Any]
) -> list[T]:
    sql = f"SELECT {_columns(cls)} FROM {table} WHERE {condition}"
    return [_fact(cls, row) for row in conn.execute(sql, params)]


def _fact(cls: type[T], row: tuple[Any, ...]) -> T:
    """A fact from its row; SQLite keeps booleans as 0/1, turned back into bools here."""
    values = [
        bool(value) if f.type == "bool" else value
        for f, value in zip(fields(cls), row, strict=True)  # type: ignore[arg-type]
    ]
    return cls(*values)
