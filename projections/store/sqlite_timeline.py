"""The timeline projection's tables in the SQLite view store: entries and merge links.

Merged customers are resolved when the timeline is read (`MEMBERS`), so undoing a merge separates
the histories again and the order in which different customers' events arrive never matters.
The reads both view stores share are timeline_reads.py's; the watch's reads by rowid are here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from crm.instants import sortable_instant
from projections.catalogue import Batch
from projections.store.dialect import Dialect
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


def _any_of(column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
    return f"{column} IN ({', '.join('?' * len(values))})", list(values)


DIALECT = Dialect(param="?", members=MEMBERS, merged="active = 1", any_of=_any_of)
"""SQLite's share of the queries both view stores run alike (timeline_reads.py, ...)."""


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
