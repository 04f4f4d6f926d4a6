"""The KPI report's reads of the fact tables, one copy for the SQLite and PostgreSQL view stores.

The SQL only narrows by day (and cheap filters); projections.kpi_tally.build_report applies every
rule itself. The tables and their writes are each dialect's own (sqlite_kpis.py, postgres_kpis.py).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from projections.kpi_report import KpiQuery, KpiReport
from projections.kpi_tally import build_report
from projections.kpis import CaseFact, ContactFact, PurchaseFact, SurveyFact
from projections.store import timeline_reads
from projections.store.dialect import Connection, Dialect

T = TypeVar("T")


def read_kpis(dialect: Dialect, conn: Connection, query: KpiQuery) -> KpiReport:
    """Fetch the facts the period can touch and let the shared pure code add them up; the caller
    holds one snapshot for every SELECT."""
    since, until = query.since.isoformat(), query.until.isoformat()
    contacts = _select(
        dialect,
        conn,
        ContactFact,
        "kpi_contacts",
        *_filtered("day >= ? AND day < ?", [since, until], query),
    )
    surveys = [
        (_fact(SurveyFact, row[:-2]), str(row[-2]), str(row[-1]))
        for row in dialect.rows(
            conn,
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
        dialect,
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
        dialect,
        conn,
        PurchaseFact,
        "kpi_purchases",
        "day >= ? AND day < ?",
        [query.previous_since.isoformat(), until],
    )
    merges = timeline_reads.merged_into(dialect, conn)
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
    dialect: Dialect,
    conn: Connection,
    cls: type[T],
    table: str,
    condition: str,
    params: list[Any],
) -> list[T]:
    sql = f"SELECT {_columns(cls)} FROM {table} WHERE {condition}"
    return [_fact(cls, row) for row in dialect.rows(conn, sql, params)]


def _fact(cls: type[T], row: Any) -> T:
    """A fact from its row; SQLite keeps booleans as 0/1, turned back into bools here (PostgreSQL's
    BOOLEAN columns come back as bools already, which this leaves as they are)."""
    values = [
        bool(value) if f.type == "bool" else value
        for f, value in zip(fields(cls), row, strict=True)  # type: ignore[arg-type]
    ]
    return cls(*values)
