"""The event store port: append with an expected revision, read a stream, read the global order.

Revisions are zero-based per stream; global positions start at 1 and grow in commit order, so a
reader that has applied position N asks for everything after N and never misses an event.

Besides the events, a store keeps two things of its own:
- a request index: which command (by its digest) each request id stands for, and what it appended
  to each stream, written in the transaction of the append, so a request id means one command
  across the whole store and a retry is recognised without reading the stream;
- snapshots of folded aggregate states, a cache that saves folding long streams from the start.
  They are not events: not in the global order, not hash-chained, and replaceable at any time.
- seals (crm.seals): signed heads of the chain over the global order, each with its entries, kept
  in order; a seal is kept only if it continues the newest one, so sealers never fork.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from crm.doorbell import Doorbell, ring_across_processes
from crm.envelope import NewEvent, RecordedEvent, metadata_json
from crm.notify import ChangeSignal
from crm.seals import Seal, SealEntry, encode_entries

ChainRow = tuple[int, str, int, str, str, bytes, str, str, str, str]
"""An event as stored, undecoded, for verifying at speed: global position, stream, revision,
event id, type, data, metadata (the stored JSON text: canonical, as hashed, in rows written since
verification splices it; older rows may differ in spacing and key order), recorded_at (ISO 8601
text, as hashed), previous hash, content hash."""


class StreamState(Enum):
    """Expected revisions that are not a number."""

    ANY = "any"
    NO_STREAM = "no_stream"


ExpectedRevision = int | StreamState


@dataclass(frozen=True)
class AppendResult:
    """Where the appended events landed: the stream's last revision and its global position."""

    stream: str
    revision: int
    global_position: int


@dataclass(frozen=True)
class RequestRecord:
    """What one request appended to one stream, as the request index keeps it."""

    request_id: str
    command_digest: str
    stream: str
    event_ids: tuple[str, ...]
    revision: int  # of the request's last event in the stream
    global_position: int  # of that event


@dataclass(frozen=True)
class Snapshot:
    """An aggregate's state folded up to `revision` of its stream, in the aggregate's own form.

    `event_id` names the event at `revision`, so a reader can check the stream still holds it;
    `version` names the fold that produced `state`: a reader running another fold ignores it.
    """

    stream: str
    revision: int
    event_id: str
    version: int
    state: bytes


class EventStore(ABC):
    """Port every event store adapter implements; the shared conformance suite checks each one."""

    def __init__(self) -> None:
        self.appended = ChangeSignal()
        self._doorbell: Doorbell | None = None
        self._unavailable_listeners: list[Callable[[str], None]] = []

    @abstractmethod
    def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedRevision
    ) -> AppendResult:
        """Append atomically if the stream is at `expected`, else raise ConcurrencyConflict.

        Re-appending events whose ids are already recorded in the stream, in the same order,
        writes nothing and returns the original result (retries are harmless).

        The request index is written in the same transaction: each event's
        `metadata.request_id` (when not empty) is bound to its `metadata.command_digest`. One
        request may append to several streams (a merge does), always with the same digest; an
        append carrying a request id bound to another digest raises ConcurrencyConflict (another
        command holds that id) and writes nothing.

        Appends that arrive together may be committed in one transaction (group commit); each is
        still checked on its own, one that fails writes nothing and fails alone, and a return
        always means the events are durably committed.
        """

    @abstractmethod
    def read_stream(
        self, stream: str, from_revision: int = 0, limit: int | None = None
    ) -> list[RecordedEvent]:
        """The stream's events from `from_revision` on; an empty list for an unknown stream."""

    @abstractmethod
    def read_all(self, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Events with a global position greater than `after`, in global order."""

    @abstractmethod
    def last_position(self) -> int:
        """The global position of the newest event, 0 for an empty store."""

    @abstractmethod
    def find_request(self, request_id: str) -> list[RequestRecord]:
        """What the request appended, one record per stream in the order it appended them;
        an empty list for a request id the store has not seen."""

    @abstractmethod
    def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep `snapshot` as its stream's one snapshot, replacing whatever was kept before.

        Last writer wins: two loaders racing may leave the older of their snapshots, which costs
        the next load a few more events and nothing else; a snapshot that no longer matches its
        stream is replaced by the next one written.
        """

    @abstractmethod
    def read_snapshot(self, stream: str, after_revision: int = -1) -> Snapshot | None:
        """The stream's snapshot (of whatever version) if it was folded past `after_revision`;
        None otherwise, so a reader whose cache is as new reads no state it would not use."""

    @abstractmethod
    def save_seal(self, seal: Seal, entries: Sequence[SealEntry]) -> None:
        """Keep `seal` and its entries if it continues the newest kept seal (its
        `previous_position` is that seal's position, 0 when none is kept); otherwise raise
        ConcurrencyConflict (another sealer was first) and keep nothing."""

    @abstractmethod
    def read_seals(self, after: int = 0, limit: int = 1000) -> list[Seal]:
        """Kept seals with a position greater than `after`, oldest first."""

    @abstractmethod
    def latest_seal(self) -> Seal | None:
        """The newest kept seal, None when none is kept."""

    @abstractmethod
    def seal_entries(self, position: int) -> list[SealEntry]:
        """The entries kept with the seal at `position` (the events it covers since the seal
        before it), in global order; an empty list when no seal is kept there. IntegrityError
        when they were kept but no longer decode."""

    def seal_entries_bytes(self, position: int) -> bytes | None:
        """The entries kept with the seal at `position` in their stored form (encode_entries),
        for a verifier to compare with what it expects without decoding them; None when no seal
        is kept there. Adapters that keep the bytes override it; this fallback re-encodes the
        decoded entries (IntegrityError when they no longer decode)."""
        entries = self.seal_entries(position)
        return encode_entries(entries) if entries else None

    def read_chain(self, after: int = 0, limit: int = 1000) -> list[ChainRow]:
        """What `read_all` returns, undecoded: the stored bytes a verifier rehashes. Adapters
        that keep rows override it to skip decoding; this fallback re-encodes decoded events."""
        return [
            (
                e.global_position,
                e.stream,
                e.revision,
                e.event_id,
                e.type,
                e.data,
                metadata_json(e.metadata),
                e.recorded_at.isoformat(),
                e.previous_hash,
                e.content_hash,
            )
            for e in self.read_all(after, limit)
        ]

    def close(self) -> None:
        """Release the doorbell; adapters that hold connections close them and call this too."""
        if self._doorbell is not None:
            self._doorbell.close()

    def ring_across_processes(self, store_file: Path) -> None:
        """Wake followers in every process that opened the same file (crm/doorbell.py), for
        adapters whose database cannot notify by itself."""
        self._doorbell = ring_across_processes(self.appended, store_file)

    def on_unavailable(self, listener: Callable[[str], None]) -> None:
        """Call `listener(reason)` (on the failing thread) when the store finds it can no longer
        write where it was opened; a server stops reporting itself healthy then."""
        self._unavailable_listeners.append(listener)

    def report_unavailable(self, reason: str) -> None:
        """Adapters call it before raising the OperationalError that says why."""
        for listener in self._unavailable_listeners:
            listener(reason)

    def notify_appended(self) -> None:
        """Wake followers in this process (crm.follow); adapters call it after each commit."""
        self.appended.notify()
