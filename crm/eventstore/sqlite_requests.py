"""The SQLite event store's request index: request id -> command digest and what it appended.

One row per (request id, stream), written in the append's transaction. A request id is bound to
the digest of the command that first used it; a merge appends the same request and digest to two
streams, so one request may own several rows, never with different digests (an append that would
break this is refused as a conflict). Files written before the index existed get it built from
their events when they are opened (`index_recorded_requests`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field

from crm.envelope import NewEvent
from crm.errors import ConcurrencyConflict
from crm.eventstore.port import RequestRecord

SCHEMA = """
    CREATE TABLE IF NOT EXISTS request_index (
        request_id TEXT NOT NULL,
        stream TEXT NOT NULL,
        command_digest TEXT NOT NULL,
        event_ids TEXT NOT NULL,
        revision INTEGER NOT NULL,
        global_position INTEGER NOT NULL,
        PRIMARY KEY (request_id, stream)
    ) WITHOUT ROWID
"""

_COLUMNS = "request_id, command_digest, stream, event_ids, revision, global_position"


def find(conn: sqlite3.Connection, request_id: str) -> list[RequestRecord]:
    """Every stream the request appended to, in the order of its appends."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM request_index WHERE request_id = ? ORDER BY global_position",
        (request_id,),
    ).fetchall()
    return [
        RequestRecord(request, digest, stream, tuple(json.loads(ids)), revision, position)
        for request, digest, stream, ids, revision, position in rows
    ]


def check_bindings(conn: sqlite3.Connection, stream: str, events: Sequence[NewEvent]) -> None:
    """Refuse an append whose request ids are bound to other commands than its events name."""
    digests: dict[str, str] = {}
    for event in events:
        request_id, digest = event.metadata.request_id, event.metadata.command_digest
        if request_id and digests.setdefault(request_id, digest) != digest:
            raise ConcurrencyConflict(
                f"stream {stream}: request {request_id} names two commands in one append"
            )
    for request_id, digest in digests.items():
        other = conn.execute(
            "SELECT 1 FROM request_index WHERE request_id = ? AND command_digest != ? LIMIT 1",
            (request_id, digest),
        ).fetchone()
        if other is not None:
            raise ConcurrencyConflict(
                f"stream {stream}: request {request_id} was recorded for another command"
            )


@dataclass
class _Appended:
    """What one request appended to one stream, gathered before it is written."""

    digest: str
    event_ids: list[str] = field(default_factory=list)
    revision: int = -1
    position: int = 0


def record(
    conn: sqlite3.Connection,
    stream: str,
    events: Sequence[NewEvent],
    revisions: Sequence[int],
    positions: Sequence[int],
) -> None:
    """Index the events one append wrote (call it in the append's transaction)."""
    appended: dict[str, _Appended] = {}
    for event, revision, position in zip(events, revisions, positions, strict=True):
        request_id = event.metadata.request_id
        if not request_id:
            continue
        entry = appended.setdefault(request_id, _Appended(event.metadata.command_digest))
        entry.event_ids.append(event.event_id)
        entry.revision, entry.position = revision, position
    for request_id, entry in appended.items():
        _upsert(conn, request_id, stream, entry)


def _upsert(conn: sqlite3.Connection, request_id: str, stream: str, entry: _Appended) -> None:
    earlier = conn.execute(
        "SELECT event_ids FROM request_index WHERE request_id = ? AND stream = ?",
        (request_id, stream),
    ).fetchone()
    # Command handling appends once per request and stream; a raw caller may append more often
    # under one request id, and the row then covers all of its appends.
    event_ids = (json.loads(earlier[0]) if earlier else []) + entry.event_ids
    conn.execute(
        "INSERT OR REPLACE INTO request_index"
        " (request_id, stream, command_digest, event_ids, revision, global_position)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (request_id, stream, entry.digest, json.dumps(event_ids), entry.revision, entry.position),
    )


def index_recorded_requests(conn: sqlite3.Connection) -> int:
    """Build the index from the events already stored (a file written before it existed).

    Reads the events once in global order; a request keeps the digest of its first event in each
    stream, as the stream scan that served idempotency before did. Returns the rows written.
    """
    conn.execute("DELETE FROM request_index")
    gathered: dict[tuple[str, str], _Appended] = {}
    rows = conn.execute(
        "SELECT stream, revision, global_position, event_id,"
        " json_extract(metadata, '$.request_id'), json_extract(metadata, '$.command_digest')"
        " FROM events ORDER BY global_position"
    )
    for stream, revision, position, event_id, request_id, digest in rows:
        if not request_id:
            continue
        entry = gathered.setdefault((request_id, stream), _Appended(digest or ""))
        entry.event_ids.append(event_id)
        entry.revision, entry.position = revision, position
    for (request_id, stream), entry in gathered.items():
        _upsert(conn, request_id, stream, entry)
    return len(gathered)
