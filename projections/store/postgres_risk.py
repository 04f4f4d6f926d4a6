"""The customer risk projection's tables in the PostgreSQL view store: each case's escalation and
each piece of feedback's signal, read together for a customer and the profiles merged into it.

The same rows as projections/store/sqlite_risk.py; the reads are risk_reads.py's, given
PostgreSQL's NULL ordering here.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection

from crm.instants import sortable_instant
from projections.catalogue import Batch
from projections.risk import CaseEscalation, CustomerRisk, risk_changes
from projections.store import risk_reads
from projections.store.postgres_schema import Migration
from projections.store.postgres_timeline import DIALECT
from projections.store.remembered import Remembered

TABLES = ("risk_cases", "risk_feedback")
MIGRATIONS = (
    Migration(
        "escalations by case and feedback signals",
        (
            """
            CREATE TABLE risk_cases (
                case_id TEXT COLLATE "C" PRIMARY KEY,
                customer_id TEXT COLLATE "C" NOT NULL,
                level INTEGER NOT NULL,
                escalated_since TEXT COLLATE "C",
                since TEXT COLLATE "C",
                position BIGINT NOT NULL
            )
            """,
            "CREATE INDEX risk_cases_by_customer ON risk_cases (customer_id, level)",
            """
            CREATE TABLE risk_feedback (
                feedback_id TEXT COLLATE "C" PRIMARY KEY,
                customer_id TEXT COLLATE "C" NOT NULL,
                case_id TEXT COLLATE "C" NOT NULL,
                reason TEXT COLLATE "C" NOT NULL,
                global_position BIGINT NOT NULL
            )
            """,
            "CREATE INDEX risk_feedback_by_customer"
            " ON risk_feedback (customer_id, global_position)",
        ),
    ),
)


def write(conn: Connection[Any], news: Batch, kept: Remembered[CaseEscalation] | None) -> None:
    """Write a batch's escalations and signals; `kept` holds escalations written before, during
    a rebuild."""

    def read(case_id: str) -> CaseEscalation | None:
        return risk_reads.escalation(DIALECT, conn, case_id)

    changes = risk_changes(news, read if kept is None else kept.loader(read))
    if kept is not None:
        kept.keep(changes.cases)
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO risk_cases (case_id, customer_id, level, escalated_since, since, position)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (case_id) DO UPDATE SET"
            " customer_id = EXCLUDED.customer_id, level = EXCLUDED.level,"
            " escalated_since = EXCLUDED.escalated_since, since = EXCLUDED.since,"
            " position = EXCLUDED.position",
            [
                (
                    case.case_id,
                    case.customer_id,
                    case.level,
                    None if case.since is None else sortable_instant(case.since),
                    None if case.since is None else case.since.isoformat(),
                    case.position,
                )
                for case in changes.cases.values()
            ],
        )
        cursor.executemany(
            "INSERT INTO risk_feedback (feedback_id, customer_id, case_id, reason,"
            " global_position) VALUES (%s, %s, %s, %s, %s) ON CONFLICT (feedback_id) DO NOTHING",
            [
                (s.feedback_id, s.customer_id, s.case_id, s.reason, s.position)
                for s in changes.signals
            ],
        )


def customer_risk(conn: Connection[Any], customer_id: str) -> CustomerRisk:
    """At risk while a case is escalated or the latest feedback is negative; profiles merged
    into the customer count, as their histories show on its timeline."""
    return risk_reads.customer_risk(
        DIALECT, conn, customer_id, longest_escalated="escalated_since ASC NULLS FIRST"
    )
