"""The customer risk projection's reads, one copy for the SQLite and PostgreSQL view stores
(projections/store/dialect.py); the tables and their writes stay in sqlite_risk.py and
postgres_risk.py."""

from __future__ import annotations

from datetime import datetime

from projections.risk import CaseEscalation, CustomerRisk
from projections.store.dialect import Connection, Dialect


def customer_risk(
    dialect: Dialect, conn: Connection, customer_id: str, *, longest_escalated: str
) -> CustomerRisk:
    """At risk while a case is escalated or the latest feedback is negative; profiles merged
    into the customer count, as their histories show on its timeline. `longest_escalated`: the
    dialect's ORDER BY term putting cases without an escalation instant first."""
    cases = dialect.rows(
        conn,
        f"{dialect.members} SELECT case_id, level FROM risk_cases"
        " WHERE customer_id IN (SELECT id FROM members) AND level > 0"
        f" ORDER BY level DESC, {longest_escalated}, case_id",
        (customer_id,),
    )
    latest = dialect.row(
        conn,
        f"{dialect.members} SELECT reason FROM risk_feedback"
        " WHERE customer_id IN (SELECT id FROM members)"
        " ORDER BY global_position DESC LIMIT 1",
        (customer_id,),
    )
    return CustomerRisk(
        customer_id,
        tuple((str(case_id), int(level)) for case_id, level in cases),
        "" if latest is None else str(latest[0]),
    )


def escalation(dialect: Dialect, conn: Connection, case_id: str) -> CaseEscalation | None:
    """A case's stored escalation, None if none."""
    row = dialect.row(
        conn,
        "SELECT customer_id, level, since, position FROM risk_cases WHERE case_id = ?",
        (case_id,),
    )
    if row is None:
        return None
    customer_id, level, since, position = row
    return CaseEscalation(
        case_id,
        customer_id,
        int(level),
        None if since is None else datetime.fromisoformat(since),
        int(position),
    )
