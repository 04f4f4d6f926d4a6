"""The embedded event store: one SQLite file in WAL mode, safe for many threads and processes.

Writers take the database's write lock up front (BEGIN IMMEDIATE), so appends are serialized and
global positions are handed out in commit order: a reader following positions never skips an event.
Within a process, appends that arrive together are written by one thread in one transaction, each
in a savepoint of its own (crm.eventstore.group_commit), so concurrent commands share an fsync.

Layout versions (`PRAGMA user_version`): 0 is the events table alone; 1 adds the request index
(built from the stored events when an older file is opened) and the snapshots table.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crm.envelope import (
    GENESIS_HASH,
    NewEvent,
    RecordedEvent,
    StoredAt,
    chain_hash,
    metadata_json,
    stored_metadata,
)
from crm.errors import (
    ConcurrencyConflict,
    IntegrityError,
    InvalidInput,
    OperationalError,
)
from crm.eventstore import sqlite_requests, sqlite_seals
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
from crm.seals import Seal, SealEntry
from crm.sqlite_connections import ThreadConnections, immediate, translated

log = logging.getLogger(__name__)

LAYOUT_VERSION = 1

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS events (
        global_position INTEGER PRIMARY KEY AUTOINCREMENT,
        stream TEXT NOT NULL,
        revision INTEGER NOT NULL,
        event_id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        data BLOB NOT NULL,
        metadata TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        previous_hash TEXT NOT NULL,
        content_hash TEXT NOT NULL,
        UNIQUE (stream, revision)
    )
    """,
    "CREATE INDEX IF NOT EXISTS events_by_customer ON events (customer_id, global_position)",
    sqlite_requests.SCHEMA,
    sqlite_seals.SCHEMA,
    """
    CREATE TABLE IF NOT EXISTS snapshots (
        stream TEXT PRIMARY KEY,
        revision INTEGER NOT NULL,
        event_id TEXT NOT NULL,
        version INTEGER NOT NULL,
        state BLOB NOT NULL
    )
    """,
)

_COLUMNS = (
    "stream, revision, global_position, event_id, type, data, metadata, recorded_at,"
    " previous_hash, content_hash"
)


@contextmanager
def _translated() -> Iterator[None]:
    """sqlite3's exceptions in the system's error tree; a unique-constraint race is a conflict."""
    try:
        with translated("sqlite event store"):
            yield
    except IntegrityError as exc:
        cause = exc.__cause__
        # Only reachable if another writer slipped past the write lock; treat it as a lost race.
        if isinstance(cause, sqlite3.IntegrityError) and (
            "events.event_id" in str(cause) or "events.stream, events.revision" in str(cause)
        ):
            raise ConcurrencyConflict(f"another writer appended first: {cause}") from cause
        raise


def _describe(revision: ExpectedRevision) -> str:
    if isinstance(revision, StreamState):
        return revision.value
    return "no_stream" if revision < 0 else str(revision)


class SqliteEventStore(EventStore):
    """Event store in one SQLite file; one connection per thread, as gRPC serves from a pool."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self._path = Path(path)
        self._connections = ThreadConnections(self._path, "sqlite event store")
        self.commits = GroupCommitter(self._transaction, _savepoint)
        conn = self._connection()
        with _translated():
            # WAL is a property of the file; setting it once per open is enough.
            conn.execute("PRAGMA journal_mode=WAL")
            with immediate(conn):
                for statement in _SCHEMA:
                    conn.execute(statement)
                _migrate(conn, self._path)
        self._identity = _file_identity(self._path)

    def _connection(self) -> sqlite3.Connection:
        with _translated():
            return self._connections.get()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        with _translated(), immediate(conn):
            yield conn
            self._check_file()  # last thing before COMMIT: raising here rolls the batch back

    def _check_file(self) -> None:
        """Refuse to commit into a file that is no longer the one at the store's path.

        An open connection keeps writing to the file it opened even after it was deleted or
        replaced, so every commit would be acknowledged into a file nobody will ever read again.
        One stat per commit batch notices it.
        """
        identity = _file_identity(self._path)
        if identity == self._identity:
            return
        what = "was removed" if identity is None else "was replaced by another file"
        reason = (
            f"sqlite event store {self._path} {what} while open; nothing more is written:"
            " restore the file and restart the server"
        )
        log.error(reason)
        self.report_unavailable(reason)
        raise OperationalError(reason)

    def close(self) -> None:
        """Close every thread's connection; the store is unusable afterwards."""
        self._connections.close()
        super().close()

    def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedRevision
    ) -> AppendResult:
        """Append if the stream is at `expected`; re-appending recorded events is a no-op."""
        if not events:
            raise InvalidInput("events", "an append needs at least one event")
        ids = [event.event_id for event in events]
        if len(set(ids)) != len(ids):
            raise InvalidInput("events", "event ids must be distinct within one append")
        if isinstance(expected, int) and expected < 0:
            raise InvalidInput("expected", f"revision must be >= 0, got {expected}")

        def append_in(conn: sqlite3.Connection) -> tuple[AppendResult, bool]:
            with _translated():
                replayed = self._replayed(conn, stream, ids)
                if replayed is not None:
                    return replayed, False  # nothing written: the events are recorded already
                sqlite_requests.check_bindings(conn, stream, events)
                return self._write(conn, stream, events, expected), True

        result, written = self.commits.submit(append_in)
        if written:
            self.notify_appended()
        return result

    def _replayed(
        self, conn: sqlite3.Connection, stream: str, ids: list[str]
    ) -> AppendResult | None:
        """The original result if these exact events were appended before; None if all are new."""
        first = conn.execute("SELECT stream, revision FROM events WHERE event_id = ?", (ids[0],))
        found = first.fetchone()
        if found is None:
            for event_id in ids[1:]:
                if conn.execute("SELECT 1 FROM events WHERE event_id = ?", (event_id,)).fetchone():
                    raise ConcurrencyConflict(
                        f"stream {stream}: event {event_id} is already recorded but {ids[0]} is"
                        " not; a retry must resend the original append unchanged"
                    )
            return None
        recorded_stream, first_revision = found
        rows = conn.execute(
            "SELECT event_id, revision, global_position FROM events"
            " WHERE stream = ? AND revision >= ? ORDER BY revision LIMIT ?",
            (stream, first_revision, len(ids)),
        ).fetchall()
        # Revisions of a stream have no gaps, so matching ids in order means consecutive events.
        if recorded_stream != stream or [row[0] for row in rows] != ids:
            raise ConcurrencyConflict(
                f"stream {stream}: event {ids[0]} is already recorded (in stream"
                f" {recorded_stream}) but the other events do not match that append"
            )
        _, last_revision, last_position = rows[-1]
        return AppendResult(stream, last_revision, last_position)

    def _write(
        self,
        conn: sqlite3.Connection,
        stream: str,
        events: Sequence[NewEvent],
        expected: ExpectedRevision,
    ) -> AppendResult:
        last = conn.execute(
            "SELECT revision, content_hash FROM events WHERE stream = ?"
            " ORDER BY revision DESC LIMIT 1",
            (stream,),
        ).fetchone()
        actual, previous_hash = (-1, GENESIS_HASH) if last is None else (last[0], last[1])
        if expected is StreamState.NO_STREAM:
            ok = last is None
        else:
            ok = expected is StreamState.ANY or expected == actual
        if not ok:
            raise ConcurrencyConflict(
                f"stream {stream}: expected revision {_describe(expected)},"
                f" actual {_describe(actual)}"
            )
        recorded_at = datetime.now(UTC)
        revision, position = actual, 0
        revisions: list[int] = []
        positions: list[int] = []
        for event in events:
            revision += 1
            content_hash = chain_hash(previous_hash, stream, revision, event, recorded_at)
            cursor = conn.execute(
                "INSERT INTO events (stream, revision, event_id, type, data, metadata,"
                " customer_id, recorded_at, previous_hash, content_hash)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    stream,
                    revision,
                    event.event_id,
                    event.type,
                    event.data,
                    metadata_json(event.metadata),
                    event.metadata.customer_id,
                    recorded_at.isoformat(),
                    previous_hash,
                    content_hash,
                ),
            )
            position = cursor.lastrowid or 0
            previous_hash = content_hash
            revisions.append(revision)
            positions.append(position)
        sqlite_requests.record(conn, stream, events, revisions, positions)
        return AppendResult(stream, revision, position)

    def read_stream(
        self, stream: str, from_revision: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]:
        """The stream's events from `from_revision` on; an empty list for an unknown stream."""
        where = "stream = ? AND revision >= ? ORDER BY revision"
        return self._select(where, stream, from_revision, -1 if limit is None else max(limit, 0))

    def read_all(self, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Events with a global position greater than `after`, in global order."""
        return self._select("global_position > ? ORDER BY global_position", after, max(limit, 0))

    def _select(self, where: str, *params: object) -> list[RecordedEvent]:
        with _translated():
            sql = f"SELECT {_COLUMNS} FROM events WHERE {where} LIMIT ?"
            rows = self._connection().execute(sql, params).fetchall()
        return [_recorded(row) for row in rows]

    def last_position(self) -> int:
        """The global position of the newest event, 0 for an empty store."""
        with _translated():
            row = self._connection().execute("SELECT MAX(global_position) FROM events").fetchone()
        return int(row[0] or 0)

    def find_request(self, request_id: str) -> list[RequestRecord]:
        """What the request appended, one record per stream in the order of its appends."""
        with _translated():
            return sqlite_requests.find(self._connection(), request_id)

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep the snapshot as its stream's one snapshot, replacing what was kept before."""

        def save_in(conn: sqlite3.Connection) -> None:
            with _translated():
                conn.execute(
                    "INSERT OR REPLACE INTO snapshots (stream, revision, event_id, version, state)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (
                        snapshot.stream,
                        snapshot.revision,
                        snapshot.event_id,
                        snapshot.version,
                        snapshot.state,
                    ),
                )

        # Through the group committer: a snapshot rides along with the appends of the moment
        # instead of waiting for the file's write lock on its own.
        self.commits.submit(save_in)

    def read_snapshot(self, stream: str, after_revision: int = -1) -> Snapshot | None:
        """The stream's snapshot if it was folded past `after_revision`; None otherwise."""
        with _translated():
            row = (
                self._connection()
                .execute(
                    "SELECT revision, event_id, version, state FROM snapshots"
                    " WHERE stream = ? AND revision > ?",
                    (stream, after_revision),
                )
                .fetchone()
            )
        if row is None:
            return None
        revision, event_id, version, state = row
        return Snapshot(stream, revision, event_id, version, bytes(state))

    def save_seal(self, seal: Seal, entries: Sequence[SealEntry]) -> None:
        """Keep the seal if it continues the newest one (crm.eventstore.sqlite_seals)."""
        with self._transaction() as conn:
            sqlite_seals.save(conn, seal, entries)

    def read_seals(self, after: int = 0, limit: int = 1000) -> list[Seal]:
        """Kept seals after `after`, oldest first."""
        with _translated():
            return sqlite_seals.read(self._connection(), after, limit)

    def latest_seal(self) -> Seal | None:
        """The newest kept seal."""
        with _translated():
            return sqlite_seals.latest(self._connection())

    def seal_entries(self, position: int) -> list[SealEntry]:
        """The entries kept with the seal at `position`."""
        with _translated():
            return sqlite_seals.entries(self._connection(), position)

    def seal_entries_bytes(self, position: int) -> bytes | None:
        """The entries kept with the seal at `position`, as stored."""
        with _translated():
            return sqlite_seals.entries_bytes(self._connection(), position)

    def read_chain(self, after: int = 0, limit: int = 1000) -> list[ChainRow]:
        """The rows as stored: no decoding, for verifying at speed."""
        with _translated():
            rows = self._connection().execute(sqlite_seals.CHAIN_SQL, (after, max(limit, 0)))
            return rows.fetchall()


def _file_identity(path: Path) -> tuple[int, int] | None:
    """The (device, inode) of the file at `path`, None when there is none."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring an older file up to LAYOUT_VERSION (inside the schema transaction)."""
    layout = conn.execute("PRAGMA user_version").fetchone()[0]
    if layout >= LAYOUT_VERSION:
        return
    indexed = sqlite_requests.index_recorded_requests(conn)
    if indexed:
        log.info("event store %s: request index built for %d earlier requests", path, indexed)
    conn.execute(f"PRAGMA user_version = {LAYOUT_VERSION}")


@contextmanager
def _savepoint(conn: sqlite3.Connection) -> Iterator[None]:
    """One append of a group commit: rolled back alone if it fails."""
    conn.execute("SAVEPOINT one_append")
    try:
        yield
    except BaseException as exc:
        if not conn.in_transaction:  # SQLite rolled back the whole transaction (disk full ...)
            raise TransactionLost(str(exc)) from exc
        try:
            conn.execute("ROLLBACK TO one_append")
            conn.execute("RELEASE one_append")
        except sqlite3.Error as rollback_failed:
            raise TransactionLost(f"{exc} (and rolling back: {rollback_failed})") from exc
        raise
    conn.execute("RELEASE one_append")


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
        recorded_at=datetime.fromisoformat(recorded_at),
        previous_hash=hashes[0],
        content_hash=hashes[1],
    )
