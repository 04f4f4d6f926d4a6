"""The PostgreSQL event store's request index: request id -> command digest and what it appended.

The same rules as the SQLite index (crm/eventstore/sqlite_requests.py), the conformance suite
holding both to them: one row per (request id, stream), written in the append's transaction; a
request id is bound to the digest of the command that first used it, and an append naming it with
another digest is refused as a conflict. Appends run under the store's append lock, so the check
and the write cannot interleave with another writer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg

from crm.envelope import NewEvent
from crm.errors import ConcurrencyConflict
from crm.eventstore.port import RequestRecord

Connection = psycopg.Connection[Any]


def find(conn: Connection, request_id: str) -> list[RequestRecord]:
    """Every stream the request appended to, in the order of its appends."""
    rows = conn.execute(
        "SELECT request_id, command_digest, stream, event_ids, revision, global_position"
        " FROM event_requests WHERE request_id = %s ORDER BY global_position",
        (request_id,),
    ).fetchall()
    return [
        RequestRecord(request, digest, stream, tuple(ids), revision, position)
        for request, digest, stream, ids, revision, position in rows
    ]


def ask_bindings(
    conn: Connection, stream: str, events: Sequence[NewEvent]
) -> psycopg.Cursor[Any] | None:
    """Ask which of the append's request ids are bound to other commands than its events name
    (the answer is read by `refuse_other_commands`, so a pipeline can send the question along
    with others); None when the append carries no request id."""
    digests: dict[str, str] = {}
    for event in events:
        request_id, digest = event.metadata.request_id, event.metadata.command_digest
        if request_id and digests.setdefault(request_id, digest) != digest:
            raise ConcurrencyConflict(
                f"stream {stream}: request {request_id} names two commands in one append"
            )
    if not digests:
        return None
    return conn.execute(
        "SELECT r.request_id FROM event_requests AS r"
        " JOIN unnest(%s::text[], %s::text[]) AS asked (request_id, digest)"
        " ON r.request_id = asked.request_id WHERE r.command_digest <> asked.digest LIMIT 1",
        (list(digests), list(digests.values())),
    )


def refuse_other_commands(stream: str, asked: psycopg.Cursor[Any] | None) -> None:
    """Refuse the append if `ask_bindings` found a request id bound to another command."""
    other = None if asked is None else asked.fetchone()
    if other is not None:
        raise ConcurrencyConflict(
            f"stream {stream}: request {other[0]} was recorded for another command"
        )


@dataclass
class _Appended:
    """What one request appended to one stream, gathered before it is written."""

    digest: str
    event_ids: list[str] = field(default_factory=list)
    revision: int = -1
    position: int = 0


def record(
    conn: Connection,
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
    if not appended:
        return
    # Command handling appends once per request and stream; a raw caller may append more often
    # under one request id, and the row then covers all of its appends.
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO event_requests"
            " (request_id, stream, command_digest, event_ids, revision, global_position)"
            " VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (request_id, stream) DO UPDATE SET"
            " command_digest = excluded.command_digest,"
            " event_ids = event_requests.event_ids || excluded.event_ids,"
            " revision = excluded.revision, global_position = excluded.global_position",
            [
                (request_id, stream, entry.digest, entry.event_ids, entry.revision, entry.position)
                for request_id, entry in appended.items()
            ],
        )
