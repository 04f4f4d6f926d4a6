"""The KPI facts projection's tables in the PostgreSQL view store (read by kpi_reads.py).

The same rows as projections/store/sqlite_kpis.py: single-event facts inserted once by their
id, a case's row replaced as its view changes, and the projection's own copy of each case's
view. Flags are BOOLEAN columns here, so rows come back as the facts' own types.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from operator import attrgetter
from typing import Any

from psycopg import Connection

from projections.case_view import CaseView
from projections.catalogue import Batch
from projections.kpis import CaseFact, ContactFact, PurchaseFact, SurveyFact, kpi_changes
from projections.store.postgres_cases import loader
from projections.store.postgres_schema import Migration
from projections.store.remembered import Remembered
from projections.store.rows import encode_view

TABLES = ("kpi_contacts", "kpi_surveys", "kpi_purchases", "kpi_cases", "kpi_case_views")
MIGRATIONS = (
    Migration(
        "contact, survey, purchase and case facts, and the projection's case views",
        (
            """
            CREATE TABLE kpi_contacts (
                event_id TEXT COLLATE "C" PRIMARY KEY,
                case_id TEXT COLLATE "C" NOT NULL,
                day TEXT COLLATE "C" NOT NULL,
                channel TEXT COLLATE "C" NOT NULL,
                direction TEXT COLLATE "C" NOT NULL,
                team TEXT COLLATE "C" NOT NULL,
                category TEXT COLLATE "C" NOT NULL,
                offered BOOLEAN NOT NULL,
                answered BOOLEAN NOT NULL,
                handled BOOLEAN NOT NULL,
                bot_session BOOLEAN NOT NULL,
                bot_resolved BOOLEAN NOT NULL,
                handed_over BOOLEAN NOT NULL,
                talk_seconds BIGINT NOT NULL,
                hold_seconds BIGINT NOT NULL,
                after_work_seconds BIGINT NOT NULL
            )
            """,
            "CREATE INDEX kpi_contacts_by_day ON kpi_contacts (day)",
            """
            CREATE TABLE kpi_surveys (
                feedback_id TEXT COLLATE "C" PRIMARY KEY,
                customer_id TEXT COLLATE "C" NOT NULL,
                case_id TEXT COLLATE "C" NOT NULL,
                day TEXT COLLATE "C" NOT NULL,
                channel TEXT COLLATE "C" NOT NULL,
                csat INTEGER,
                nps INTEGER,
                ces INTEGER
            )
            """,
            "CREATE INDEX kpi_surveys_by_day ON kpi_surveys (day)",
            """
            CREATE TABLE kpi_purchases (
                event_id TEXT COLLATE "C" PRIMARY KEY,
                customer_id TEXT COLLATE "C" NOT NULL,
                day TEXT COLLATE "C" NOT NULL,
                kind TEXT COLLATE "C" NOT NULL
            )
            """,
            "CREATE INDEX kpi_purchases_by_day ON kpi_purchases (day)",
            """
            CREATE TABLE kpi_cases (
                case_id TEXT COLLATE "C" PRIMARY KEY,
                customer_id TEXT COLLATE "C" NOT NULL,
                channel TEXT COLLATE "C" NOT NULL,
                category TEXT COLLATE "C" NOT NULL,
                team TEXT COLLATE "C" NOT NULL,
                opened_day TEXT COLLATE "C" NOT NULL,
                opened_utc TEXT COLLATE "C" NOT NULL,
                first_response_seconds DOUBLE PRECISION,
                resolved_day TEXT COLLATE "C",
                resolution_seconds DOUBLE PRECISION,
                first_resolved_day TEXT COLLATE "C",
                reopened BOOLEAN NOT NULL,
                fcr BOOLEAN NOT NULL,
                transfers INTEGER NOT NULL,
                escalated BOOLEAN NOT NULL,
                sla_outcome TEXT COLLATE "C" NOT NULL,
                sla_decided_day TEXT COLLATE "C",
                inactive TEXT COLLATE "C" NOT NULL,
                done_utc TEXT COLLATE "C"
            )
            """,
            "CREATE INDEX kpi_cases_by_opened ON kpi_cases (opened_utc)",
            "CREATE TABLE kpi_case_views"
            ' (case_id TEXT COLLATE "C" PRIMARY KEY, view TEXT NOT NULL)',
        ),
    ),
)


def write(conn: Connection[Any], news: Batch, kept: Remembered[CaseView] | None) -> None:
    """Write a batch's KPI facts; the caller holds the transaction. `kept` holds the
    projection's case views written before, during a rebuild."""
    changes = kpi_changes(news, loader(conn, "kpi_case_views", kept))
    if kept is not None:
        kept.keep(changes.case_views)
    _insert(conn, "kpi_contacts", ContactFact, changes.contacts, replace=False)
    _insert(conn, "kpi_surveys", SurveyFact, changes.surveys, replace=False)
    _insert(conn, "kpi_purchases", PurchaseFact, changes.purchases, replace=False)
    _insert(conn, "kpi_cases", CaseFact, changes.cases, replace=True)
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO kpi_case_views (case_id, view) VALUES (%s, %s)"
            " ON CONFLICT (case_id) DO UPDATE SET view = EXCLUDED.view",
            [(view.case_id, encode_view(view)) for view in changes.case_views.values()],
        )


def _insert(
    conn: Connection[Any], table: str, cls: type[Any], rows: Iterable[Any], *, replace: bool
) -> None:
    """Insert facts keyed by their first field: a later fact of the same key replaces the
    earlier one (`replace`) or is the same fact redelivered and ignored."""
    names = [f.name for f in fields(cls)]
    values = attrgetter(*names)  # the fields are plain values: no deep copy as astuple makes
    updates = ", ".join(f"{name} = EXCLUDED.{name}" for name in names[1:])
    conflict = f"DO UPDATE SET {updates}" if replace else "DO NOTHING"
    with conn.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} ({', '.join(names)})"
            f" VALUES ({', '.join(['%s'] * len(names))}) ON CONFLICT ({names[0]}) {conflict}",
            [values(row) for row in rows],
        )
