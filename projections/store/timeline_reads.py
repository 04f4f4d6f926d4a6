"""The timeline's reads both view stores run alike: a customer's members, merge links in force,
pages in the order things happened, and entries after a global position.

One copy for SQLite and PostgreSQL (projections/store/dialect.py); what differs (the tables, their
writes, and the numbering of writes a live watch follows) stays in sqlite_timeline.py and
postgres_timeline.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from crm.instants import sortable_instant
from projections.store.dialect import Connection, Dialect
from projections.store.queries import PageCursor, TimelinePage, TimelineQuery, encode_page_token
from projections.store.rows import ENTRY_COLUMNS, entry_from_row
from projections.timeline import TimelineEntry


def members(dialect: Dialect, conn: Connection, customer_id: str) -> frozenset[str]:
    """The customer and every profile merged into it now."""
    rows = dialect.rows(conn, f"{dialect.members} SELECT id FROM members", (customer_id,))
    return frozenset(str(row[0]) for row in rows)


def merged_into(dialect: Dialect, conn: Connection) -> dict[str, str]:
    """Every profile merged now -> its survivor (for the KPI report's retention)."""
    rows = dialect.rows(
        conn, f"SELECT duplicate_id, survivor_id FROM customer_merges WHERE {dialect.merged}"
    )
    return {str(duplicate): str(survivor) for duplicate, survivor in rows}


def page(dialect: Dialect, conn: Connection, query: TimelineQuery) -> TimelinePage:
    """One page of the timeline in the order things happened (occurred_utc, ties by global
    position), paged by keyset: the token carries the last (instant, position) handed out."""
    conditions: list[str] = []
    params: list[Any] = [query.customer_id]
    after = query.after
    if after is not None:
        beyond = "<" if query.newest_first else ">"
        conditions.append(f"(occurred_utc, global_position) {beyond} (?, ?)")
        params.extend((after.occurred_utc, after.position))
    for column, values in (("channel", query.channels), ("kind", query.kinds)):
        if values:
            condition, values_params = dialect.any_of(column, sorted(values))
            conditions.append(condition)
            params.extend(values_params)
    if query.case_id:
        conditions.append("case_id = ?")
        params.append(query.case_id)
    if query.since is not None:
        conditions.append("occurred_utc >= ?")
        params.append(sortable_instant(query.since))
    if query.until is not None:
        conditions.append("occurred_utc < ?")
        params.append(sortable_instant(query.until))
    order = "DESC" if query.newest_first else "ASC"
    params.append(query.page_size + 1)
    rows = _entries(
        dialect,
        conn,
        " ".join(f"AND {condition}" for condition in conditions),
        f"ORDER BY occurred_utc {order}, global_position {order} LIMIT ?",
        params,
    )
    entries = [entry_from_row(row) for row in rows[: query.page_size]]
    if len(rows) <= query.page_size:
        return TimelinePage(entries)
    last = entries[-1]
    cursor = PageCursor(sortable_instant(last.occurred_at), last.global_position)
    return TimelinePage(entries, encode_page_token(cursor))


def entries_after(
    dialect: Dialect, conn: Connection, customer_id: str, after_position: int, limit: int
) -> list[TimelineEntry]:
    """Entries of the customer and its merged profiles after a global position, oldest first."""
    rows = _entries(
        dialect,
        conn,
        "AND global_position > ?",
        "ORDER BY global_position ASC LIMIT ?",
        [customer_id, after_position, max(limit, 0)],
    )
    return [entry_from_row(row) for row in rows]


def _entries(
    dialect: Dialect, conn: Connection, conditions: str, order: str, params: Sequence[Any]
) -> list[Any]:
    sql = (
        f"{dialect.members} SELECT {ENTRY_COLUMNS} FROM timeline"
        f" WHERE customer_id IN (SELECT id FROM members) {conditions} {order}"
    )
    return dialect.rows(conn, sql, params)
