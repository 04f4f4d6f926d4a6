"""The timeline projection's tables in the PostgreSQL view store: entries and merge links.

The same rows and queries as projections/store/sqlite_timeline.py. Entries are numbered in the
order they are written by an identity column (`seq`, SQLite's rowid there); writers of the
timeline hold its lock until they commit (projections/store/postgres.py), so the numbers also
become visible in that order and a watch that reads "after seq N" never skips one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Connection, sql

from crm.instants import sortable_instant
from projections.catalogue import Batch
from projections.store.postgres_schema import Migration
from projections.store.queries import PageCursor, TimelinePage, TimelineQuery, encode_page_token
from projections.store.rows import ENTRY_COLUMNS, entry_from_row, entry_row
from projections.timeline import TimelineEntry, timeline_changes

TABLES = ("timeline", "customer_merges")
MIGRATIONS = (
    Migration(
        "entries and merge links",
        (
            """
            CREATE TABLE timeline (
                seq BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
                event_id TEXT COLLATE "C" PRIMARY KEY,
                global_position BIGINT NOT NULL,
                customer_id TEXT COLLATE "C" NOT NULL,
                case_id TEXT COLLATE "C" NOT NULL,
                kind TEXT COLLATE "C" NOT NULL,
                event_type TEXT COLLATE "C" NOT NULL,
                channel TEXT COLLATE "C" NOT NULL,
                direction TEXT COLLATE "C" NOT NULL,
                actor TEXT COLLATE "C" NOT NULL,
                occurred_at TEXT COLLATE "C" NOT NULL,
                occurred_utc TEXT COLLATE "C" NOT NULL,
                summary TEXT COLLATE "C" NOT NULL
            )
            """,
            "CREATE INDEX timeline_by_customer ON timeline (customer_id, global_position)",
            # GetTimeline's order: when it happened, ties by position.
            "CREATE INDEX timeline_by_customer_occurred"
            " ON timeline (customer_id, occurred_utc, global_position)",
            # The live watch's order: as written.
            "CREATE INDEX timeline_by_customer_seq ON timeline (customer_id, seq)",
            """
            CREATE TABLE customer_merges (
                duplicate_id TEXT COLLATE "C" PRIMARY KEY,
                survivor_id TEXT COLLATE "C" NOT NULL,
                merge_id TEXT COLLATE "C" NOT NULL,
                active BOOLEAN NOT NULL,
                position BIGINT NOT NULL
            )
            """,
            "CREATE INDEX merges_by_survivor ON customer_merges (survivor_id, active)",
        ),
    ),
)

MEMBERS = """
    WITH RECURSIVE members(id) AS (
        SELECT %s::text COLLATE "C"
        UNION
        SELECT m.duplicate_id FROM customer_merges m JOIN members ON m.survivor_id = members.id
        WHERE m.active
    )
"""
"""The customer and, recursively, every profile merged into it now: projections.lineage's
`timeline_members` as a query (the conformance suite proves the two equal). UNION, not UNION ALL,
drops rows already seen, so even a cycle of links terminates. Its parameter is the customer id."""


def write(conn: Connection[Any], news: Batch, kept: None = None) -> None:
    """Insert the batch's entries once each, and keep the newest fact of each merge link (it
    reads nothing back, so it keeps nothing in a rebuild)."""
    changes = timeline_changes(news)
    with conn.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO timeline ({ENTRY_COLUMNS}, occurred_utc)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (event_id) DO NOTHING",
            [(*entry_row(entry), sortable_instant(entry.occurred_at)) for entry in changes.entries],
        )
        cursor.executemany(
            "INSERT INTO customer_merges (duplicate_id, survivor_id, merge_id, active, position)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (duplicate_id) DO UPDATE SET"
            " survivor_id = EXCLUDED.survivor_id, merge_id = EXCLUDED.merge_id,"
            " active = EXCLUDED.active, position = EXCLUDED.position"
            " WHERE EXCLUDED.position > customer_merges.position",  # newer_link, in SQL
            [
                (link.duplicate_id, link.survivor_id, link.merge_id, link.active, link.position)
                for link in changes.merge_links.values()
            ],
        )


def members(conn: Connection[Any], customer_id: str) -> frozenset[str]:
    """The customer and every profile merged into it now."""
    rows = conn.execute(f"{MEMBERS} SELECT id FROM members", (customer_id,)).fetchall()
    return frozenset(str(row[0]) for row in rows)


def merged_into(conn: Connection[Any]) -> dict[str, str]:
    """Every profile merged now -> its survivor (for the KPI report's retention)."""
    rows = conn.execute("SELECT duplicate_id, survivor_id FROM customer_merges WHERE active")
    return {str(duplicate): str(survivor) for duplicate, survivor in rows}


def page(conn: Connection[Any], query: TimelineQuery) -> TimelinePage:
    """One page of the timeline in the order things happened (occurred_utc, ties by global
    position), paged by keyset: the token carries the last (instant, position) handed out."""
    conditions: list[str] = []
    params: list[Any] = [query.customer_id]
    after = query.after
    if after is not None:
        beyond = "<" if query.newest_first else ">"
        conditions.append(f"(occurred_utc, global_position) {beyond} (%s, %s)")
        params.extend((after.occurred_utc, after.position))
    for column, values in (("channel", query.channels), ("kind", query.kinds)):
        if values:
            conditions.append(f"{column} = ANY(%s::text[])")
            params.append(sorted(values))
    if query.case_id:
        conditions.append("case_id = %s")
        params.append(query.case_id)
    if query.since is not None:
        conditions.append("occurred_utc >= %s")
        params.append(sortable_instant(query.since))
    if query.until is not None:
        conditions.append("occurred_utc < %s")
        params.append(sortable_instant(query.until))
    order = "DESC" if query.newest_first else "ASC"
    params.append(query.page_size + 1)
    rows = _entries(
        conn,
        " ".join(f"AND {condition}" for condition in conditions),
        f"ORDER BY occurred_utc {order}, global_position {order} LIMIT %s",
        params,
    )
    entries = [entry_from_row(row) for row in rows[: query.page_size]]
    if len(rows) <= query.page_size:
        return TimelinePage(entries)
    last = entries[-1]
    cursor = PageCursor(sortable_instant(last.occurred_at), last.global_position)
    return TimelinePage(entries, encode_page_token(cursor))


def entries_after(
    conn: Connection[Any], customer_id: str, after_position: int, limit: int
) -> list[TimelineEntry]:
    """Entries of the customer and its merged profiles after a global position, oldest first."""
    rows = _entries(
        conn,
        "AND global_position > %s",
        "ORDER BY global_position ASC LIMIT %s",
        [customer_id, after_position, max(limit, 0)],
    )
    return [entry_from_row(row) for row in rows]


def continue_numbering(conn: Connection[Any], old_schema: str, new_schema: str) -> None:
    """Number the new generation's next entries after every entry of the old one: a live watch
    holding an old number then still sees what is written after a switch (entries written just
    before it may still come twice or, unread yet, be missed: README, Rebuilding views)."""
    old, new = sql.Identifier(old_schema, "timeline"), sql.Identifier(new_schema, "timeline")
    conn.execute(
        sql.SQL(
            "SELECT setval(pg_get_serial_sequence({new_name}, 'seq'), GREATEST("
            " (SELECT COALESCE(MAX(seq), 0) FROM {old}), (SELECT COALESCE(MAX(seq), 0) FROM {new}),"
            " 1))"
        ).format(new_name=sql.Literal(new.as_string(conn)), old=old, new=new)
    )


def watermark(conn: Connection[Any]) -> int:
    """The newest entry's number: numbers grow in the order entries are written."""
    row = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM timeline").fetchone()
    return 0 if row is None else int(row[0])


def writers_after(
    conn: Connection[Any], after_sequence: int, limit: int
) -> list[tuple[int, str, str]]:
    """(number, customer, event type) of the entries written after a number, in that order."""
    rows = conn.execute(
        "SELECT seq, customer_id, event_type FROM timeline WHERE seq > %s ORDER BY seq LIMIT %s",
        (after_sequence, max(limit, 0)),
    ).fetchall()
    return [(int(sequence), str(customer), str(kind)) for sequence, customer, kind in rows]


def entries_applied_after(
    conn: Connection[Any], customer_id: str, after_sequence: int, limit: int
) -> tuple[list[TimelineEntry], int]:
    """The customer's entries (merged profiles included) written after a number, and the last
    number read."""
    sql = (
        f"{MEMBERS} SELECT seq, {ENTRY_COLUMNS} FROM timeline"
        " WHERE customer_id IN (SELECT id FROM members) AND seq > %s ORDER BY seq LIMIT %s"
    )
    rows = conn.execute(sql, (customer_id, after_sequence, max(limit, 0))).fetchall()
    last = int(rows[-1][0]) if rows else after_sequence
    return [entry_from_row(row[1:]) for row in rows], last


def _entries(
    conn: Connection[Any], conditions: str, order: str, params: Sequence[Any]
) -> list[tuple[Any, ...]]:
    sql = (
        f"{MEMBERS} SELECT {ENTRY_COLUMNS} FROM timeline"
        f" WHERE customer_id IN (SELECT id FROM members) {conditions} {order}"
    )
    return conn.execute(sql, params).fetchall()
