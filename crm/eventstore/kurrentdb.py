"""The KurrentDB / EventStoreDB event store, through kurrentdbclient (the `kurrentdb` extra).

Each port stream is a KurrentDB stream of the same name; the global order is `$all`, read through
a server-side filter that keeps the store's event streams only (crm.eventstore.kurrentdb_mapping).
An append reads its stream's last event (the hash chain links to it), checks idempotency and the
request index (crm.eventstore.kurrentdb_index), binds its ids there, and then appends at the exact
revision it read, so the chain cannot fork: a writer that lost the race writes nothing. ANY only
means "wherever the stream ends": the store finds that revision itself and tries again if another
writer got there first.

Snapshots live in a stream per aggregate stream (`crm-snapshot-<stream>`) whose metadata keeps
one event. Appends that arrive together are not grouped: each is one round trip of its own.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

import grpc
import kurrentdbclient as kdb
from kurrentdbclient import exceptions as kdb_errors

from crm.envelope import GENESIS_HASH, NewEvent, RecordedEvent, chain_hash
from crm.errors import (
    ConcurrencyConflict,
    CrmError,
    IntegrityError,
    InvalidInput,
    OperationalError,
)
from crm.eventstore import kurrentdb_index as index
from crm.eventstore import kurrentdb_seals
from crm.eventstore.kurrentdb_client import KurrentClient
from crm.eventstore.kurrentdb_mapping import (
    StreamNames,
    commit_position,
    describe,
    exact_version,
    from_client_event,
    global_position,
    revision_matches,
    to_client_event,
)
from crm.eventstore.kurrentdb_url import connection_uri
from crm.eventstore.kurrentdb_watch import AppendWatch
from crm.eventstore.port import (
    AppendResult,
    EventStore,
    ExpectedRevision,
    RequestRecord,
    Snapshot,
    StreamState,
)
from crm.seals import Seal, SealEntry
from crm.urls import redacted

log = logging.getLogger(__name__)

ATTEMPTS = 50  # races lost on an index stream, or (expected ANY) on the stream itself
PROBE_SECONDS = 5.0
SNAPSHOT = "crm.snapshot.v1"
_BACKOFF_SECONDS = 0.005


@contextmanager
def translated(what: str) -> Iterator[None]:
    """kurrentdbclient's exceptions in the system's error tree."""
    try:
        yield
    except CrmError:
        raise
    except kdb_errors.WrongCurrentVersionError as exc:
        raise ConcurrencyConflict(f"{what}: {exc}") from exc
    except kdb_errors.MaximumAppendSizeExceededError as exc:
        raise InvalidInput(
            "events", f"{what}: larger than the server accepts in one append ({exc})"
        ) from exc
    except (kdb_errors.StreamIsDeletedError, kdb_errors.StreamTombstonedError) as exc:
        raise IntegrityError(f"{what}: the stream was deleted on the server ({exc})") from exc
    except (kdb_errors.KurrentDBClientError, grpc.RpcError) as exc:
        raise OperationalError(f"kurrentdb event store: {what}: {exc!r}") from exc


class KurrentDBEventStore(EventStore):
    """Event store in a KurrentDB / EventStoreDB server (or cluster) reached by one client."""

    def __init__(self, client: KurrentClient, *, namespace: str = "", watch: bool = True) -> None:
        super().__init__()
        self._client = client
        self.names = StreamNames(namespace)
        self._filter = (self.names.events_filter(),)
        self._watch = (
            AppendWatch(client, self.names.events_filter(), self.notify_appended) if watch else None
        )

    def close(self) -> None:
        """Stop the appended signal's subscription and close the client."""
        if self._watch is not None:
            self._watch.stop()
        self._client.close()
        super().close()

    # --- appending -------------------------------------------------------------------------

    def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedRevision
    ) -> AppendResult:
        """Append at `expected`; a retry of recorded events returns the original result."""
        self.names.check(stream)
        if not events:
            raise InvalidInput("events", "an append needs at least one event")
        ids = [event.event_id for event in events]
        if len(set(ids)) != len(ids):
            raise InvalidInput("events", "event ids must be distinct within one append")
        if isinstance(expected, int) and expected < 0:
            raise InvalidInput("expected", f"revision must be >= 0, got {expected}")
        for attempt in range(ATTEMPTS):
            with translated(f"append to {stream}"):
                result = self._attempt(stream, events, expected)
            if result is not None:
                return result
            time.sleep(random.uniform(0, _BACKOFF_SECONDS * min(2**attempt, 64)))
        raise ConcurrencyConflict(f"stream {stream}: lost {ATTEMPTS} races in a row; retry later")

    def _attempt(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedRevision
    ) -> AppendResult | None:
        """One try; None when a race was lost that a new try may win."""
        actual, previous_hash = self._tail(stream)
        keys = index.keys(self.names, events)
        indexes = {key: self._index(key) for key in keys}
        known = [binding for _, bindings in indexes.values() for binding in bindings]
        replayed = index.check(stream, events, actual + 1, known, self._read)
        if replayed is not None:
            return replayed  # nothing written: the events are recorded already
        if not revision_matches(expected, actual):
            raise ConcurrencyConflict(
                f"stream {stream}: expected revision {describe(expected)},"
                f" actual {describe(actual)}"
            )
        recorded_at = datetime.now(UTC)
        client_events: list[kdb.NewEvent] = []
        for revision, event in enumerate(events, start=actual + 1):
            content_hash = chain_hash(previous_hash, stream, revision, event, recorded_at)
            client_events.append(to_client_event(event, recorded_at, previous_hash, content_hash))
            previous_hash = content_hash
        bound: list[tuple[str, int]] = []
        for key, request_id in keys.items():
            end = indexes[key][0]
            digest = next(
                e.metadata.command_digest for e in events if e.metadata.request_id == request_id
            )
            entry = index.bound_event(
                stream, request_id, digest, [e.event_id for e in events], actual + 1
            )
            try:
                self._client.append_to_stream(
                    key, events=[entry], current_version=exact_version(end)
                )
            except kdb_errors.WrongCurrentVersionError:
                self._release(bound)  # another append under this key went first: check again
                return None
            bound.append((key, end + 1))
        try:
            commit = self._client.append_to_stream(
                self.names.server(stream),
                events=client_events,
                current_version=exact_version(actual),
            )
        except kdb_errors.WrongCurrentVersionError:
            self._release(bound)
            if expected is StreamState.ANY:
                return None  # the stream moved on; ANY goes wherever it ends now
            raise ConcurrencyConflict(
                f"stream {stream}: expected revision {describe(expected)}, another writer"
                " appended first"
            ) from None
        # Any other failure leaves the bindings pending: a retry finds out what happened.
        self.notify_appended()
        return AppendResult(stream, actual + len(events), global_position(commit))

    def _tail(self, stream: str) -> tuple[int, str]:
        """The stream's last revision (-1: none) and the content hash the next event links to."""
        last = self._events(self.names.server(stream), backwards=True, limit=1)
        if not last:
            return -1, GENESIS_HASH
        event = from_client_event(last[0], self.names)
        return event.revision, event.content_hash

    def _index(self, key: str) -> tuple[int, list[index.Binding]]:
        """An index stream's last revision (-1: none) and its live bindings."""
        recorded = self._events(key)
        end = recorded[-1].stream_position if recorded else -1
        return end, index.bindings(key, recorded)

    def _release(self, bound: Sequence[tuple[str, int]]) -> None:
        """Void bindings whose append will not happen, so later checks need not read their
        stream. Only tidiness: a binding left behind (this failed, or the process died) reads as
        void once another append takes its revision, and as pending until then."""
        for key, entry in bound:
            try:
                self._client.append_to_stream(
                    key, events=[index.released_event(entry)], current_version=kdb.StreamState.ANY
                )
            except (kdb_errors.KurrentDBClientError, grpc.RpcError) as exc:
                log.warning(
                    "kurrentdb event store: binding %s@%d not released: %r", key, entry, exc
                )

    # --- reading ---------------------------------------------------------------------------

    def _events(
        self,
        server_stream: str,
        *,
        start: int | None = None,
        backwards: bool = False,
        limit: int = sys.maxsize,
    ) -> tuple[kdb.RecordedEvent, ...]:
        try:
            return self._client.get_stream(
                server_stream, stream_position=start, backwards=backwards, limit=limit
            )
        except kdb_errors.NotFoundError:
            return ()

    def _read(self, stream: str, from_revision: int, count: int) -> list[RecordedEvent]:
        recorded = self._events(self.names.server(stream), start=from_revision, limit=count)
        return [from_client_event(e, self.names) for e in recorded]

    def read_stream(
        self, stream: str, from_revision: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]:
        """The stream's events from `from_revision` on; an empty list for an unknown stream."""
        self.names.check(stream)
        if limit is not None and limit <= 0:
            return []
        with translated(f"read {stream}"):
            return self._read(
                stream, max(from_revision, 0), sys.maxsize if limit is None else limit
            )

    def read_all(self, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Events with a global position greater than `after`, in global order.

        KurrentDB reads from a commit position inclusively, so the event at `after` comes back
        first and is dropped here.
        """
        if limit <= 0:
            return []
        start = commit_position(after)
        with (
            translated("read $all"),
            self._client.read_all(
                commit_position=start,
                filter_include=self._filter,
                filter_by_stream_name=True,
                limit=limit if start is None else limit + 1,
            ) as response,
        ):
            recorded = [e for e in response if self.names.is_event_stream(e.stream_name)]
        # Checked before the event at `after` is dropped: a second event at that very position
        # is one the previous page could not have delivered.
        _check_increasing(start, [e.commit_position for e in recorded])
        if start is not None and recorded and recorded[0].commit_position == start:
            recorded = recorded[1:]
        return [from_client_event(e, self.names) for e in recorded[:limit]]

    def last_position(self) -> int:
        """The global position of the newest event, 0 for an empty store."""
        with (
            translated("read $all backwards"),
            self._client.read_all(
                backwards=True, filter_include=self._filter, filter_by_stream_name=True, limit=1
            ) as response,
        ):
            newest = list(response)
        return global_position(newest[0].commit_position) if newest else 0

    def find_request(self, request_id: str) -> list[RequestRecord]:
        """What the request appended, one record per stream, from its recorded bindings."""
        if not request_id:
            return []
        with translated(f"read the index of request {request_id}"):
            _, bindings = self._index(self.names.request(request_id))
            return index.records(request_id, bindings, self._read)

    # --- snapshots -------------------------------------------------------------------------

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep the snapshot as the one event of its snapshot stream (max count 1)."""
        name = self.names.snapshot(snapshot.stream)
        described = {
            "revision": snapshot.revision,
            "event_id": snapshot.event_id,
            "version": snapshot.version,
        }
        event = kdb.NewEvent(
            type=SNAPSHOT,
            data=snapshot.state,
            metadata=json.dumps(described).encode(),
            content_type="application/octet-stream",
        )
        with translated(f"save the snapshot of {snapshot.stream}"):
            try:
                self._client.append_to_stream(
                    name, events=[event], current_version=kdb.StreamState.NO_STREAM
                )
            except kdb_errors.WrongCurrentVersionError:
                self._client.append_to_stream(
                    name, events=[event], current_version=kdb.StreamState.ANY
                )
            else:
                self._keep_one(name)

    def _keep_one(self, name: str) -> None:
        """Let the server drop all but the newest snapshot of a stream (set with its first).

        Failing only costs room on the server, since reads take the newest; the snapshot itself
        is saved, so this logs rather than raises.
        """
        try:
            self._client.set_stream_metadata(name, metadata={"$maxCount": 1})
        except (kdb_errors.KurrentDBClientError, grpc.RpcError) as exc:
            log.warning("kurrentdb event store: %s keeps every snapshot: %r", name, exc)

    def read_snapshot(self, stream: str, after_revision: int = -1) -> Snapshot | None:
        """The stream's snapshot if it was folded past `after_revision`; None otherwise."""
        with translated(f"read the snapshot of {stream}"):
            newest = self._events(self.names.snapshot(stream), backwards=True, limit=1)
        if not newest:
            return None
        try:
            described = json.loads(newest[0].metadata)
            revision, event_id = int(described["revision"]), str(described["event_id"])
            version = int(described["version"])
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"snapshot of {stream}: {exc}") from exc
        if revision <= after_revision:
            return None
        return Snapshot(stream, revision, event_id, version, newest[0].data)

    # --- seals (crm.eventstore.kurrentdb_seals) ---------------------------------------------

    def save_seal(self, seal: Seal, entries: Sequence[SealEntry]) -> None:
        """Keep the seal if it continues the newest one."""
        with translated(f"save the seal at {seal.position}"):
            kurrentdb_seals.save(self._client, self.names.seals(), seal, entries)

    def read_seals(self, after: int = 0, limit: int = 1000) -> list[Seal]:
        """Kept seals after `after`, oldest first."""
        with translated("read the seals"):
            return kurrentdb_seals.read(self._client, self.names.seals(), after, limit)

    def latest_seal(self) -> Seal | None:
        """The newest kept seal."""
        with translated("read the newest seal"):
            return kurrentdb_seals.latest(self._client, self.names.seals())

    def seal_entries(self, position: int) -> list[SealEntry]:
        """The entries kept with the seal at `position`."""
        with translated(f"read the seal at {position}"):
            return kurrentdb_seals.entries(self._client, self.names.seals(), position)


def _check_increasing(start: int | None, commits: Sequence[int]) -> None:
    """Refuse a page whose commit positions do not grow: followers would skip or repeat events.

    `start` is where the read began (it includes the event there, if any). Positions grow if
    every event of an append has a commit position of its own, which this adapter assumes of the
    server and its conformance run checks; should a server break it, reading stops here instead
    of going wrong quietly.
    """
    previous = -1 if start is None else start - 1
    for position in commits:
        if position <= previous:
            raise IntegrityError(
                f"commit positions do not grow ({previous} then {position}): this server gives"
                " several events one commit position, which this adapter does not support"
            )
        previous = position


def open_kurrentdb(url: str, field: str, *, namespace: str = "") -> KurrentDBEventStore:
    """Connect to the server a `kurrentdb://` URL names, and fail now if it cannot be reached.

    `field` names the setting in the one-line error: a malformed URL, or a server that does not
    answer a read of `$all` within PROBE_SECONDS.
    """
    uri = connection_uri(url, field)
    client: kdb.KurrentDBClient | None = None
    try:
        client = kdb.KurrentDBClient(uri)
        client.get_commit_position(timeout=PROBE_SECONDS)
    except (kdb_errors.KurrentDBClientError, grpc.RpcError, ValueError) as exc:
        if client is not None:
            client.close()
        raise InvalidInput(
            field,
            f"cannot reach KurrentDB at {redacted(url)} ({type(exc).__name__}: {exc});"
            " is the server up, and do tls= and the credentials match it?",
        ) from None
    return KurrentDBEventStore(client, namespace=namespace)
