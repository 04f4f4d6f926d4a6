"""How the port's streams, revisions, positions and events map onto KurrentDB's, both ways.

Everything here is pure, so it is tested without a server:
- stream names: the port's streams live under an optional namespace; the store's own streams (the
  request index, snapshots) have reserved prefixes, and `$` belongs to the server;
- expected revisions: whether the port's ANY / NO_STREAM / exact number holds for a stream, and the
  client's `current_version` an append is sent with, always exact (ANY is resolved beforehand);
- global positions: `$all`'s commit position plus one, so positions start above 0 (0 means
  "nothing read yet") and keep the commit order; they are not dense;
- events: the envelope, the hashes and our own event id travel in the KurrentDB event's metadata,
  the payload bytes in its data, unchanged.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import kurrentdbclient as kdb

from crm.envelope import EventMetadata, NewEvent, RecordedEvent, canonical_json
from crm.errors import IntegrityError, InvalidInput
from crm.eventstore.port import ExpectedRevision, StreamState

REQUEST_PREFIX = "crm-request-"  # a request id's bindings (crm.eventstore.kurrentdb_index)
EVENT_KEY_PREFIX = "crm-event-"  # the binding of an event appended without a request id
SNAPSHOT_PREFIX = "crm-snapshot-"  # a stream's snapshot, one event kept (max count 1)
SEALS_STREAM = "crm-seals"  # the seals over the global order, one event each (kurrentdb_seals)
RESERVED_PREFIXES = (REQUEST_PREFIX, EVENT_KEY_PREFIX, SNAPSHOT_PREFIX, SEALS_STREAM)
_NAMESPACE = re.compile(r"[A-Za-z0-9_]*")
METADATA_FORMAT = 1


@dataclass(frozen=True)
class StreamNames:
    """Server stream names for the port's streams and the store's own, under one namespace.

    A namespace keeps several stores apart in one server (each conformance test gets a fresh
    one); production uses none.
    """

    namespace: str = ""

    def __post_init__(self) -> None:
        if not _NAMESPACE.fullmatch(self.namespace):
            raise InvalidInput("namespace", f"{self.namespace!r}: use A-Z a-z 0-9 _ only")

    def check(self, stream: str) -> None:
        """Refuse a stream name the server or this store keeps for itself."""
        if not stream:
            raise InvalidInput("stream", "a stream needs a name")
        if stream.startswith("$"):
            raise InvalidInput("stream", f"{stream!r}: names starting with $ are KurrentDB's own")
        for prefix in RESERVED_PREFIXES:
            if stream.startswith(prefix):
                raise InvalidInput(
                    "stream", f"{stream!r}: names starting with {prefix} are this store's own"
                )

    def server(self, stream: str) -> str:
        """The server's name of a port stream."""
        return self.namespace + stream

    def port(self, server_stream: str) -> str:
        """The port's name of an event stream read from the server."""
        if not server_stream.startswith(self.namespace):
            raise IntegrityError(
                f"stream {server_stream!r} is outside namespace {self.namespace!r}"
            )
        return server_stream[len(self.namespace) :]

    def request(self, request_id: str) -> str:
        """The index stream of a request id's bindings."""
        return f"{self.namespace}{REQUEST_PREFIX}{request_id}"

    def event_key(self, event_id: str) -> str:
        """The index stream of an event appended without a request id."""
        return f"{self.namespace}{EVENT_KEY_PREFIX}{event_id}"

    def snapshot(self, stream: str) -> str:
        """The stream that keeps a port stream's snapshot."""
        return f"{self.namespace}{SNAPSHOT_PREFIX}{stream}"

    def seals(self) -> str:
        """The stream that keeps the seals."""
        return f"{self.namespace}{SEALS_STREAM}"

    def events_filter(self) -> str:
        """The server-side regex (anchored by the client) of the streams that hold events."""
        reserved = "|".join(re.escape(p) for p in RESERVED_PREFIXES)
        if not self.namespace:
            return rf"(?!\$|{reserved}).*"
        return rf"{re.escape(self.namespace)}(?!{reserved}).*"

    def is_event_stream(self, server_stream: str) -> bool:
        """What `events_filter` lets through, checked again on this side of the wire."""
        return re.fullmatch(self.events_filter(), server_stream) is not None


# --- expected revisions -------------------------------------------------------------------------


def revision_matches(expected: ExpectedRevision, actual: int) -> bool:
    """Whether a stream whose last revision is `actual` (-1: no stream) is where `expected` says."""
    if expected is StreamState.ANY:
        return True
    if expected is StreamState.NO_STREAM:
        return actual == -1
    return expected == actual


def exact_version(actual: int) -> int | kdb.StreamState:
    """The `current_version` that lets an append land only right after revision `actual`.

    Every append is sent like this, whatever the caller expected: the hash chain links to the
    event read at `actual`, so the events must go exactly there or nowhere.
    """
    return kdb.StreamState.NO_STREAM if actual < 0 else actual


def describe(expected: ExpectedRevision) -> str:
    """An expected or actual revision as conflict messages name it (-1: no_stream)."""
    if isinstance(expected, StreamState):
        return expected.value
    return "no_stream" if expected < 0 else str(expected)


# --- global positions ---------------------------------------------------------------------------


def global_position(commit_position: int) -> int:
    """The port's position of an event at `commit_position` in `$all`."""
    if commit_position < 0:
        raise IntegrityError(f"commit position {commit_position} is negative")
    return commit_position + 1


def commit_position(position: int) -> int | None:
    """The `$all` commit position of the event at `position`; None for 0, the very start."""
    if position < 0:
        raise InvalidInput("after", f"a global position is >= 0, got {position}")
    return None if position == 0 else position - 1


# --- events -------------------------------------------------------------------------------------


def client_event_id(event_id: str) -> uuid.UUID:
    """The server's id of an event: our id itself when it is a UUID, else one derived from it.

    Derived ids are stable, so a retried append carries the same ids and the server sees it as
    the same append.
    """
    try:
        parsed = uuid.UUID(event_id)
    except ValueError:
        parsed = None
    if parsed is not None and str(parsed) == event_id:
        return parsed
    return uuid.uuid5(_ID_NAMESPACE, event_id)


_ID_NAMESPACE = uuid.UUID("0b4b8a52-9a51-4d1c-a3f0-3f4f3d7c2e61")


def to_client_event(
    event: NewEvent, recorded_at: datetime, previous_hash: str, content_hash: str
) -> kdb.NewEvent:
    """The KurrentDB event that records `event`: its bytes unchanged, the envelope as metadata."""
    metadata = {
        "format": METADATA_FORMAT,
        "event_id": event.event_id,
        "envelope": event.metadata.to_dict(),
        "recorded_at": recorded_at.isoformat(),
        "previous_hash": previous_hash,
        "content_hash": content_hash,
    }
    return kdb.NewEvent(
        type=event.type,
        data=event.data,
        metadata=canonical_json(metadata),
        content_type="application/json" if _is_json(event.data) else "application/octet-stream",
        id=client_event_id(event.event_id),
    )


def from_client_event(recorded: kdb.RecordedEvent, names: StreamNames) -> RecordedEvent:
    """The port's recorded event from what the server returned (see `to_client_event`)."""
    try:
        metadata: dict[str, Any] = json.loads(recorded.metadata)
        event_id = metadata["event_id"]
        envelope = EventMetadata.from_dict(metadata["envelope"])
        recorded_at = datetime.fromisoformat(metadata["recorded_at"])
        previous_hash, content_hash = metadata["previous_hash"], metadata["content_hash"]
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(
            f"{recorded.stream_name}@{recorded.stream_position}: not an event this store"
            f" recorded (metadata: {exc})"
        ) from exc
    if client_event_id(event_id) != recorded.id:
        raise IntegrityError(
            f"{recorded.stream_name}@{recorded.stream_position}: server id {recorded.id}"
            f" does not belong to event {event_id}"
        )
    return RecordedEvent(
        stream=names.port(recorded.stream_name),
        revision=recorded.stream_position,
        global_position=global_position(recorded.commit_position),
        event_id=event_id,
        type=recorded.type,
        data=recorded.data,
        metadata=envelope,
        recorded_at=recorded_at,
        previous_hash=previous_hash,
        content_hash=content_hash,
    )


def _is_json(data: bytes) -> bool:
    """Whether the server may show the payload as JSON; the bytes are stored as they are anyway."""
    try:
        json.loads(data)
    except ValueError:
        return False
    return True
