"""The PostgreSQL event store: many processes and machines on one database, gap-free global order.

Global positions are allocated in commit order, so a follower that asks for everything after its
checkpoint never skips an event committed later with a smaller position (the gap problem of
sequence-ordered tables). Every append transaction takes `LOCK TABLE events IN EXCLUSIVE MODE`
before it reads a stream's head, and numbers its events max(position) + 1, ...: the lock is held
until commit, so no other writer can allocate a position until this one's events are visible.
Readers are not blocked (plain SELECTs take a weaker lock); writers from every process queue on
the lock, which costs one commit at a time across the whole store. Within a process, appends that
arrive together are written in one transaction, each in a savepoint of its own
(crm.eventstore.group_commit), so one lock and one durable commit serve many appends; and the
statements go out in pipeline mode, so a lone append waits for about as many round trips as a
plain insert. Positions come from the table, not a sequence, so a rolled-back append leaves no
hole in the numbering.

The events, their hash chain and the request index hold what the SQLite adapter holds; each append
transaction also sends a NOTIFY that wakes followers in every process (postgres_listen).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import TransactionStatus

from crm.envelope import (
    GENESIS_HASH,
    NewEvent,
    RecordedEvent,
    StoredAt,
    chain_hash,
    metadata_json,
    stored_metadata,
)
from crm.errors import ConcurrencyConflict, IntegrityError, InvalidInput, OperationalError
from crm.eventstore import postgres_requests, postgres_schema, postgres_seals
from crm.eventstore.group_commit import GroupCommitter, TransactionLost
from crm.eventstore.port import (
    AppendResult,
    ChainRow,
    EventStore,
    ExpectedRevision,
    RequestRecord,
    Snapshot,
    StreamState,
)
from crm.eventstore.postgres_listen import CHANNEL, AppendListener
from crm.postgres_connections import open_pool, translated
from crm.seals import Seal, SealEntry

log = logging.getLogger(__name__)

LABEL = "postgres event store"
CONNECTION_WAIT_SECONDS = 5.0
"""How long a call waits for a pooled connection (all busy, or the server unreachable) before it
fails with OperationalError, so a command gets UNAVAILABLE instead of hanging."""
RECONNECT_SECONDS = 10.0
"""How long the pool retries one lost connection, its pauses doubling from one second, before it
gives up on that attempt. The pool's default (five minutes) lets the pauses grow to minutes, so
a server back after a long outage would wait that long to be used; once an attempt gave up, the
next call that finds no connection starts a fresh one at once."""

Connection = psycopg.Connection[Any]

# Taken first in every append transaction; the NOTIFY is delivered only if it commits.
_LOCK = "LOCK TABLE events IN EXCLUSIVE MODE"
_NOTIFY = f"NOTIFY {CHANNEL}"

_RECORDED = (
    "SELECT event_id, stream, revision, global_position FROM events WHERE event_id = ANY(%s)"
)

_COLUMNS = (
    "stream, revision, global_position, event_id, type, data, metadata, recorded_at,"
    " previous_hash, content_hash"
)

_HEAD = (
    "SELECT top.position, last.revision, last.content_hash"
    " FROM (SELECT COALESCE(max(global_position), 0) AS position FROM events) AS top"
    " LEFT JOIN LATERAL (SELECT revision, content_hash FROM events WHERE stream = %s"
    " ORDER BY revision DESC LIMIT 1) AS last ON true"
)

_INSERT = (
    "INSERT INTO events (global_position, stream, revision, event_id, type, data, metadata,"
    " customer_id, recorded_at, previous_hash, content_hash)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


@contextmanager
def _translated() -> Iterator[None]:
    """psycopg's exceptions in the system's error tree; a unique-constraint race is a conflict."""
    try:
        with translated(LABEL):
            yield
    except IntegrityError as exc:
        cause = exc.__cause__
        # Only reachable if a writer slipped past the append lock; treat it as a lost race.
        if (
            isinstance(cause, pg_errors.UniqueViolation)
            and cause.diag.constraint_name in postgres_schema.RACE_CONSTRAINTS
        ):
            raise ConcurrencyConflict(f"another writer appended first: {cause}") from cause
        raise


def _describe(revision: ExpectedRevision) -> str:
    if isinstance(revision, StreamState):
        return revision.value
    return "no_stream" if revision < 0 else str(revision)


class PostgresEventStore(EventStore):
    """Event store in one PostgreSQL database, shared by every process that opens its URL."""

    def __init__(
        self, url: str, *, field: str = "event_store_url", max_connections: int = 8
    ) -> None:
        """Open a pool on `url` (a bad URL fails naming `field`) and create the tables."""
        super().__init__()
        self._pool = open_pool(url, field, label=LABEL, max_size=max_connections)
        self._pool.reconnect_timeout = RECONNECT_SECONDS
        self._closed = False
        try:
            with self._connection() as conn:
                postgres_schema.create(conn)
        except BaseException:
            self._pool.close()
            raise
        self.commits = GroupCommitter(self._transaction, _savepoint)
        self.listener = AppendListener(url, LABEL, self.appended.notify_here)

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """A pooled connection in autocommit mode: reads need no transaction of their own."""
        try:
            with _translated(), self._pool.connection(timeout=CONNECTION_WAIT_SECONDS) as conn:
                conn.autocommit = True
                yield conn
        except (OperationalError, TransactionLost):
            self._drop_broken_connections()
            raise

    def _drop_broken_connections(self) -> None:
        """After a lost connection, test the idle ones too: after a server restart every one of
        them is dead, and each would otherwise fail one more call before being replaced."""
        if self._closed:
            return
        with suppress(Exception):
            self._pool.check()

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        # In pipeline mode statements go out together and the client waits only where it needs
        # an answer: BEGIN, the lock, the NOTIFY and the first append's reads share one round
        # trip, and COMMIT waits for nothing else.
        with self._connection() as conn, _translated(), conn.pipeline(), conn.transaction():
            conn.execute(_LOCK)
            conn.execute(_NOTIFY)
            yield conn

    def close(self) -> None:
        """Stop the listener and close the pool; the store is unusable afterwards."""
        if self._closed:
            return
        self.listener.stop(self._wake_listener)
        self._closed = True
        self._pool.close()
        super().close()

    def _wake_listener(self, payload: str) -> None:
        with self._connection() as conn:
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))

    def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedRevision
    ) -> AppendResult:
        """Append if the stream is at `expected`; re-appending recorded events is a no-op."""
        _check_append(stream, events, expected)
        ids = [event.event_id for event in events]

        def append_in(conn: Connection) -> tuple[AppendResult, bool]:
            # The inner pipeline block syncs when it ends, so an error of this append's
            # statements is raised here, inside its savepoint, and not in the next append's.
            with _translated(), conn.pipeline():
                # Everything the append decides on is asked at once: one round trip.
                recorded = conn.execute(_RECORDED, (ids,))
                bound = postgres_requests.ask_bindings(conn, stream, events)
                head = conn.execute(_HEAD, (stream,))
                replayed = _replayed(stream, ids, recorded.fetchall())
                if replayed is not None:
                    return replayed, False  # nothing written: the events are recorded already
                postgres_requests.refuse_other_commands(stream, bound)
                return _write(conn, stream, events, expected, head.fetchone()), True

        result, written = self.commits.submit(append_in)
        if written:
            self.notify_appended()
        return result

    def read_stream(
        self, stream: str, from_revision: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]:
        """The stream's events from `from_revision` on; an empty list for an unknown stream."""
        where = "stream = %s AND revision >= %s ORDER BY revision"
        return self._select(where, stream, from_revision, None if limit is None else max(limit, 0))

    def read_all(self, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Events with a global position greater than `after`, in global order."""
        return self._select("global_position > %s ORDER BY global_position", after, max(limit, 0))

    def _select(self, where: str, *params: object) -> list[RecordedEvent]:
        sql = f"SELECT {_COLUMNS} FROM events WHERE {where} LIMIT %s"
        with self._connection() as conn:
            rows = conn.execute(sql, params, binary=True).fetchall()
        return [_recorded(row) for row in rows]

    def last_position(self) -> int:
        """The global position of the newest event, 0 for an empty store."""
        with self._connection() as conn:
            row = conn.execute("SELECT COALESCE(max(global_position), 0) FROM events").fetchone()
        return int(row[0]) if row else 0

    def find_request(self, request_id: str) -> list[RequestRecord]:
        """What the request appended, one record per stream in the order of its appends."""
        with self._connection() as conn:
            return postgres_requests.find(conn, request_id)

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep the snapshot as its stream's one snapshot, replacing what was kept before."""
        # One statement of its own: a snapshot needs no append lock, and last writer wins.
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO event_snapshots (stream, revision, event_id, version, state)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (stream) DO UPDATE SET"
                " revision = excluded.revision, event_id = excluded.event_id,"
                " version = excluded.version, state = excluded.state",
                (
                    snapshot.stream,
                    snapshot.revision,
                    snapshot.event_id,
                    snapshot.version,
                    snapshot.state,
                ),
            )

    def read_snapshot(self, stream: str, after_revision: int = -1) -> Snapshot | None:
        """The stream's snapshot if it was folded past `after_revision`; None otherwise."""
        with self._connection() as conn:
            row = conn.execute(
                "SELECT revision, event_id, version, state FROM event_snapshots"
                " WHERE stream = %s AND revision > %s",
                (stream, after_revision),
                binary=True,
            ).fetchone()
        if row is None:
            return None
        revision, event_id, version, state = row
        return Snapshot(stream, revision, event_id, version, bytes(state))

    def save_seal(self, seal: Seal, entries: Sequence[SealEntry]) -> None:
        """Keep the seal if it continues the newest one (crm.eventstore.postgres_seals)."""
        with self._connection() as conn:
            postgres_seals.save(conn, seal, entries)

    def read_seals(self, after: int = 0, limit: int = 1000) -> list[Seal]:
        """Kept seals after `after`, oldest first."""
        with self._connection() as conn:
            return postgres_seals.read(conn, after, limit)

    def latest_seal(self) -> Seal | None:
        """The newest kept seal."""
        with self._connection() as conn:
            return postgres_seals.latest(conn)

    def seal_entries(self, position: int) -> list[SealEntry]:
        """The entries kept with the seal at `position`."""
        with self._connection() as conn:
            return postgres_seals.entries(conn, position)

    def seal_entries_bytes(self, position: int) -> bytes | None:
        """The entries kept with the seal at `position`, as stored."""
        with self._connection() as conn:
            return postgres_seals.entries_bytes(conn, position)

    def read_chain(self, after: int = 0, limit: int = 1000) -> list[ChainRow]:
        """The rows as stored, for verifying at speed."""
        with self._connection() as conn:
            return postgres_seals.chain_rows(conn, after, limit)


def _check_append(stream: str, events: Sequence[NewEvent], expected: ExpectedRevision) -> None:
    """Refuse what no append may carry, before any work: the same rules as the SQLite store,
    plus NUL characters, which PostgreSQL's text columns cannot hold."""
    if not events:
        raise InvalidInput("events", "an append needs at least one event")
    ids = [event.event_id for event in events]
    if len(set(ids)) != len(ids):
        raise InvalidInput("events", "event ids must be distinct within one append")
    if isinstance(expected, int) and expected < 0:
        raise InvalidInput("expected", f"revision must be >= 0, got {expected}")
    texts = [("stream", stream)]
    for event in events:
        metadata = event.metadata
        texts += [("event_id", event.event_id), ("type", event.type)]
        texts += [("customer_id", metadata.customer_id), ("request_id", metadata.request_id)]
        texts += [("command_digest", metadata.command_digest)]
    for name, text in texts:
        if "\x00" in text:
            raise InvalidInput(name, "must not contain a NUL character")


def _replayed(stream: str, ids: list[str], rows: list[tuple[Any, ...]]) -> AppendResult | None:
    """The original result if these exact events were appended before; None if all are new.

    `rows` are the recorded events among `ids` (event id, stream, revision, position).
    """
    if not rows:
        return None
    found = {row[0]: row for row in rows}
    first = found.get(ids[0])
    if first is None:
        recorded = next(event_id for event_id in ids if event_id in found)
        raise ConcurrencyConflict(
            f"stream {stream}: event {recorded} is already recorded but {ids[0]} is"
            " not; a retry must resend the original append unchanged"
        )
    _, recorded_stream, first_revision, _ = first
    # Revisions of a stream have no gaps: the same ids at consecutive revisions are that append.
    same = all(
        event_id in found
        and found[event_id][1] == stream
        and found[event_id][2] == first_revision + n
        for n, event_id in enumerate(ids)
    )
    if not same:
        raise ConcurrencyConflict(
            f"stream {stream}: event {ids[0]} is already recorded (in stream"
            f" {recorded_stream}) but the other events do not match that append"
        )
    _, _, last_revision, last_position = found[ids[-1]]
    return AppendResult(stream, last_revision, last_position)


def _write(
    conn: Connection,
    stream: str,
    events: Sequence[NewEvent],
    expected: ExpectedRevision,
    head: tuple[Any, ...] | None,
) -> AppendResult:
    """Check the expected revision and insert, under the append lock the transaction holds.

    `head` is the answer to _HEAD: the store's last position, the stream's last revision and
    content hash (None for a new stream).
    """
    assert head is not None  # the aggregate subquery always yields one row
    position, last_revision, last_hash = head
    found = last_revision is not None
    actual, previous_hash = (last_revision, last_hash) if found else (-1, GENESIS_HASH)
    if expected is StreamState.NO_STREAM:
        ok = not found
    else:
        ok = expected is StreamState.ANY or expected == actual
    if not ok:
        raise ConcurrencyConflict(
            f"stream {stream}: expected revision {_describe(expected)}, actual {_describe(actual)}"
        )
    recorded_at = datetime.now(UTC)
    revision = actual
    rows: list[tuple[object, ...]] = []
    revisions: list[int] = []
    positions: list[int] = []
    for event in events:
        revision += 1
        position += 1
        content_hash = chain_hash(previous_hash, stream, revision, event, recorded_at)
        rows.append(
            (
                position,
                stream,
                revision,
                event.event_id,
                event.type,
                event.data,
                metadata_json(event.metadata),
                event.metadata.customer_id,
                recorded_at,
                previous_hash,
                content_hash,
            )
        )
        previous_hash = content_hash
        revisions.append(revision)
        positions.append(position)
    with conn.cursor() as cursor:
        cursor.executemany(_INSERT, rows)
    postgres_requests.record(conn, stream, events, revisions, positions)
    return AppendResult(stream, revision, position)


@contextmanager
def _savepoint(conn: Connection) -> Iterator[None]:
    """One append of a group commit: rolled back alone if it fails."""
    try:
        with _translated(), conn.transaction():
            yield
    except Exception as exc:
        if conn.info.transaction_status != TransactionStatus.INTRANS:
            raise TransactionLost(str(exc)) from exc  # the connection took the batch with it
        raise


def _recorded(row: tuple[Any, ...]) -> RecordedEvent:
    stream, revision, position, event_id, type_, data, metadata, recorded_at, *hashes = row
    return RecordedEvent(
        stream=stream,
        revision=revision,
        global_position=position,
        event_id=event_id,
        type=type_,
        data=bytes(data),
        metadata=stored_metadata(StoredAt(stream, revision, position), metadata),
        # Written in UTC; the session's time zone must not change the hashed isoformat().
        recorded_at=recorded_at.astimezone(UTC),
        previous_hash=hashes[0],
        content_hash=hashes[1],
    )
