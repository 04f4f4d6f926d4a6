"""The customer risk projection's tables in the SQLite view store: each case's escalation and
each piece of feedback's signal, read together for a customer and the profiles merged into it.

The reads are risk_reads.py's; this module gives them SQLite's NULL ordering.
"""

from __future__ import annotations

import sqlite3

from crm.instants import sortable_instant
from projections.catalogue import Batch
from projections.risk import CaseEscalation, CustomerRisk, risk_changes
from projections.store import risk_reads
from projections.store.remembered import Remembered
from projections.store.sqlite_timeline import DIALECT

TABLES = ("risk_cases", "risk_feedback")
SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS risk_cases (
        case_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        level INTEGER NOT NULL,
        escalated_since TEXT,
        since TEXT,
        position INTEGER NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS risk_cases_by_customer ON risk_cases (customer_id, level)",
    """
    CREATE TABLE IF NOT EXISTS risk_feedback (
        feedback_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        case_id TEXT NOT NULL,
        reason TEXT NOT NULL,
        global_position INTEGER NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS risk_feedback_by_customer"
    " ON risk_feedback (customer_id, global_position)",
)


def write(conn: sqlite3.Connection, news: Batch, kept: Remembered[CaseEscalation] | None) -> None:
    """Write a batch's escalations and signals; `kept` holds escalations written before, during
    a rebuild."""

    def read(case_id: str) -> CaseEscalation | None:
        return risk_reads.escalation(DIALECT, conn, case_id)

    changes = risk_changes(news, read if kept is None else kept.loader(read))
    if kept is not None:
        kept.keep(changes.cases)
    conn.executemany(
        "INSERT OR REPLACE INTO risk_cases"
        " (case_id, customer_id, level, escalated_since, since, position)"
        " VALUES (?, ?, ?, ?, ?, ?)",
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
    conn.executemany(
        "INSERT OR IGNORE INTO risk_feedback"
        " (feedback_id, customer_id, case_id, reason, global_position) VALUES (?, ?, ?, ?, ?)",
        [(s.feedback_id, s.customer_id, s.case_id, s.reason, s.position) for s in changes.signals],
    )


def customer_risk(conn: sqlite3.Connection, customer_id: str) -> CustomerRisk:
    """At risk while a case is escalated or the latest feedback is negative; profiles merged
    into the customer count, as their histories show on its timeline."""
    return risk_reads.customer_risk(DIALECT, conn, customer_id, longest_escalated="escalated_since")
