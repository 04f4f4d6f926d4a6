"""The timeline projection's tables in the PostgreSQL view store: entries and merge links.

The same rows as projections/store/sqlite_timeline.py (the reads both share are
timeline_reads.py's). Entries are numbered in the order they are written by an identity column
(`seq`, SQLite's rowid there); writers of the timeline hold its lock until they commit
(projections/store/postgres.py), so the numbers also become visible in that order and a watch
that reads "after seq N" never skips one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import Connection, sql

from crm.instants import sortable_instant
from projections.catalogue import Batch
from projections.store.dialect import Dialect
from projections.store.postgres_schema import Migration
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


def _any_of(column: str, values: Sequence[str]) -> tuple[str, list[Any]]:
    return f"{column} = ANY(?::text[])", [list(values)]


DIALECT = Dialect(param="%s", members=MEMBERS, merged="active", any_of=_any_of)
"""PostgreSQL's share of the queries both view stores run alike (timeline_reads.py, ...)."""


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
