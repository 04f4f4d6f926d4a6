"""The timeline projection's tables in the SQLite view store: entries and merge links.

Merged customers are resolved when the timeline is read (`MEMBERS`), so undoing a merge separates
the histories again and the order in which different customers' events arrive never matters.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from crm.instants import sortable_instant
from projections.catalogue import Batch
from projections.store.queries import PageCursor, TimelinePage, TimelineQuery, encode_page_token
from projections.store.rows import ENTRY_COLUMNS, entry_from_row, entry_row
from projections.timeline import TimelineEntry, timeline_changes

TABLES = ("timeline", "customer_merges")
SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS timeline (
        event_id TEXT PRIMARY KEY,
        global_position INTEGER NOT NULL,
        customer_id TEXT NOT NULL,
        case_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        event_type TEXT NOT NULL,
        channel TEXT NOT NULL,
        direction TEXT NOT NULL,
        actor TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        occurred_utc TEXT NOT NULL,
        summary TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS timeline_by_customer ON timeline (customer_id, global_position)",
    # GetTimeline's order: when it happened, ties by position (a late-recorded contact sits
    # where it happened); the index above serves the watch, which reads in global order.
    "CREATE INDEX IF NOT EXISTS timeline_by_customer_occurred"
    " ON timeline (customer_id, occurred_utc, global_position)",
    """
    CREATE TABLE IF NOT EXISTS customer_merges (
        duplicate_id TEXT PRIMARY KEY,
        survivor_id TEXT NOT NULL,
        merge_id TEXT NOT NULL,
        active INTEGER NOT NULL,
        position INTEGER NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS merges_by_survivor ON customer_merges (survivor_id, active)",
)

MEMBERS = """
    WITH RECURSIVE members(id) AS (
        SELECT ?
        UNION
        SELECT m.duplicate_id FROM customer_merges m JOIN members ON m.survivor_id = members.id
        WHERE m.active = 1
    )
"""
"""The customer and, recursively, every profile merged into it now: projections.lineage's
`timeline_members` as an index-backed query (the conformance suite proves the two equal). UNION,
not UNION ALL, drops rows already seen, so even a cycle of links terminates."""


def write(conn: sqlite3.Connection, news: Batch, kept: None = None) -> None:
    """Insert the batch's entries once each, and keep the newest fact of each merge link (it
    reads nothing back, so it keeps nothing in a rebuild)."""
    changes = timeline_changes(news)
    conn.executemany(
        f"INSERT INTO timeline ({ENTRY_COLUMNS}, occurred_utc)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
        [(*entry_row(entry), sortable_instant(entry.occurred_at)) for entry in changes.entries],
    )
    conn.executemany(
        "INSERT INTO customer_merges (duplicate_id, survivor_id, merge_id, active, position)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (duplicate_id) DO UPDATE SET"
        " survivor_id = excluded.survivor_id, merge_id = excluded.merge_id,"
        " active = excluded.active, position = excluded.position"
        " WHERE excluded.position > customer_merges.position",  # newer_link, in SQL
        [
            (link.duplicate_id, link.survivor_id, link.merge_id, int(link.active), link.position)
            for link in changes.merge_links.values()
        ],
    )


def members(conn: sqlite3.Connection, customer_id: str) -> frozenset[str]:
    rows = conn.execute(f"{MEMBERS} SELECT id FROM members", (customer_id,)).fetchall()
    return frozenset(str(row[0]) for row in rows)


def merged_into(conn: sqlite3.Connection) -> dict[str, str]:
    """Every profile merged now -> its survivor (for the KPI report's retention)."""
    rows = conn.execute("SELECT duplicate_id, survivor_id FROM customer_merges WHERE active = 1")
    return {str(duplicate): str(survivor) for duplicate, survivor in rows}


def page(conn: sqlite3.Connection, query: TimelineQuery) -> TimelinePage:
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
            conditions.append(f"{column} IN ({', '.join('?' * len(values))})")
            params.extend(sorted(values))
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
    conn: sqlite3.Connection, customer_id: str, after_position: int, limit: int
) -> list[TimelineEntry]:
    rows = _entries(
        conn,
        "AND global_position > ?",
        "ORDER BY global_position ASC LIMIT ?",
        [customer_id, after_position, max(limit, 0)],
    )
    return [entry_from_row(row) for row in rows]


def watermark(conn: sqlite3.Connection) -> int:
    """The newest rowid of the timeline: rowids grow in the order entries are written."""
    return int(conn.execute("SELECT COALESCE(MAX(rowid), 0) FROM timeline").fetchone()[0])


def writers_after(
    conn: sqlite3.Connection, after_sequence: int, limit: int
) -> list[tuple[int, str, str]]:
    rows = conn.execute(
        "SELECT rowid, customer_id, event_type FROM timeline WHERE rowid > ? ORDER BY rowid"
        " LIMIT ?",
        (after_sequence, max(limit, 0)),
    ).fetchall()
    return [(int(sequence), str(customer), str(kind)) for sequence, customer, kind in rows]


def entries_applied_after(
    conn: sqlite3.Connection, customer_id: str, after_sequence: int, limit: int
) -> tuple[list[TimelineEntry], int]:
    sql = (
        f"{MEMBERS} SELECT rowid, {ENTRY_COLUMNS} FROM timeline"
        " WHERE customer_id IN (SELECT id FROM members) AND rowid > ? ORDER BY rowid LIMIT ?"
    )
    rows = conn.execute(sql, [customer_id, after_sequence, limit]).fetchall()
    last = int(rows[-1][0]) if rows else after_sequence
    return [entry_from_row(row[1:]) for row in rows], last


def _entries(
    conn: sqlite3.Connection, conditions: str, order: str, params: Sequence[Any]
) -> list[tuple[Any, ...]]:
    sql = (
        f"{MEMBERS} SELECT {ENTRY_COLUMNS} FROM timeline"
        f" WHERE customer_id IN (SELECT id FROM members) {conditions} {order}"
    )
    return conn.execute(sql, params).fetchall()
