"""Loading an aggregate's state at the same cost at 10 or 10,000 events.

A fold starts from the newest trustworthy state it knows and reads only the events after it:
- a bounded in-memory cache of folded states (LRU, `CACHE_SIZE` streams per category), and
- snapshots the event store keeps (`SNAPSHOT_EVERY` events apart), written by this code and
  stamped with the fold's version: a snapshot of another version is ignored and the stream is
  folded again (then the snapshot is replaced).
Both remember the id of the event they were folded to; they are used only if the stream still
holds that event at that revision, so neither can stand in for a stream that was rewritten or
restored from an older copy. Snapshots are a cache too: deleting them all changes nothing but
speed.

States hold personal data in the clear, so with a cipher (crm.personal) a snapshot is sealed
with the key of the stream's customer, and a cached state is dropped once this process learns
that a customer was forgotten: both are then folded again from events whose personal fields
read as the placeholder.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Generic, TypeVar

from crm.envelope import GENESIS_HASH, RecordedEvent, check_content, verify_links
from crm.errors import (
    CrmError,
    HistoryBroken,
    IntegrityError,
    PersistenceError,
    PersonalDataForgotten,
)
from crm.eventcodec import EventCodec, from_plain, to_plain
from crm.eventstore.port import EventStore, Snapshot

log = logging.getLogger(__name__)

S = TypeVar("S")
E = TypeVar("E")

CACHE_SIZE = 4096
"""Folded states kept in memory per category (case, customer, feedback): the streams being worked
on now. A case state is a few kilobytes, so a full cache of each category costs some tens of MB."""

SNAPSHOT_EVERY = 100
"""A snapshot is written once a stream has grown this many events past its last one, so a load
that misses the cache reads at most this many events (about as many as a fresh case has)."""


@dataclass(frozen=True)
class Fold(Generic[S, E]):
    """How an aggregate's state is folded from its events, and which version of that code it is.

    Bump `version` whenever `evolve` or the shape of `state_type` changes: snapshots of the old
    version are then ignored rather than trusted.
    """

    state_type: type[S]
    evolve: Callable[[S | None, E, datetime], S]
    version: int


@dataclass(frozen=True)
class Folded(Generic[S]):
    """A state folded up to `revision`, where the stream holds the event `event_id`.

    `snapshot_revision` is the revision of the newest usable snapshot known when it was folded
    (-1: none), which says when the next snapshot is due without reading the one kept.
    """

    revision: int
    event_id: str
    state: S
    snapshot_revision: int = -1
    content_hash: str = ""  # of the event at `revision`, once checked ("" from a snapshot)
    customer_id: str = ""  # of the event at `revision`: whose key seals its snapshot
    generation: int = 0  # of the cipher's forgotten customers when it was folded


class StateCache(Generic[S]):
    """The most recently used folded states, one per stream, safe to share between threads."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._states: OrderedDict[str, Folded[S]] = OrderedDict()

    def get(self, stream: str) -> Folded[S] | None:
        """The stream's remembered state, now the most recently used; None if not kept."""
        with self._lock:
            folded = self._states.get(stream)
            if folded is not None:
                self._states.move_to_end(stream)
            return folded

    def put(self, stream: str, folded: Folded[S]) -> None:
        """Remember a state unless a later one of the stream is remembered already."""
        with self._lock:
            known = self._states.get(stream)
            if known is not None and known.revision > folded.revision:
                return
            self._states[stream] = folded
            self._states.move_to_end(stream)
            while len(self._states) > self._size:
                self._states.popitem(last=False)

    def drop(self, stream: str) -> None:
        """Forget the stream's state (it did not match the stream)."""
        with self._lock:
            self._states.pop(stream, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._states)


def encode_state(fold: Fold[Any, Any], state: Any) -> bytes:
    """A state's snapshot form: JSON of its declared type (crm.eventcodec)."""
    return json.dumps(to_plain(state, fold.state_type), sort_keys=True).encode()


def decode_state(fold: Fold[S, Any], data: bytes) -> S:
    """The state a snapshot holds; raises if it does not read as the fold's state type."""
    state: S = from_plain(fold.state_type, json.loads(data))
    return state


class StateLoader(Generic[S, E]):
    """Folds streams of one category from the newest checked state: cache, snapshot or nothing."""

    def __init__(
        self,
        store: EventStore,
        codec: EventCodec,
        fold: Fold[S, E],
        *,
        cache_size: int = CACHE_SIZE,
        snapshot_every: int = SNAPSHOT_EVERY,
    ) -> None:
        self._store = store
        self._codec = codec
        self._fold = fold
        self._snapshot_every = snapshot_every
        self.cache: StateCache[S] = StateCache(cache_size)

    def load(self, stream: str) -> tuple[S | None, int]:
        """The stream's state and the revision it was folded to (-1 for an unknown stream)."""
        generation = self._generation()
        cached = self.cache.get(stream)
        if cached is not None and self._stale(cached):
            self.cache.drop(stream)
            cached, generation = None, self._generation()
        known = -1 if cached is None else cached.snapshot_revision
        # Only a snapshot newer than the cache is read at all: usually there is none.
        after = -1 if cached is None else cached.revision
        snapshot = self._store.read_snapshot(stream, after_revision=after)
        if snapshot is not None:
            start = self._decoded(snapshot) if snapshot.version == self._fold.version else None
            loaded = None if start is None else self._fold_from(stream, start, generation)
            if loaded is not None:
                return loaded
            known = -1  # another fold's snapshot, or one its stream does not match: replace it
        if cached is not None:
            loaded = self._fold_from(stream, replace(cached, snapshot_revision=known), generation)
            if loaded is not None:
                return loaded
            self.cache.drop(stream)
        records = self._store.read_stream(stream)
        if not records:
            return None, -1
        check_content(records[0])
        if records[0].previous_hash != GENESIS_HASH:
            raise HistoryBroken(records[0], "the first event links to an event before it")
        first = Folded(
            0,
            records[0].event_id,
            self._evolve(None, records[0]),
            known,
            records[0].content_hash,
            records[0].metadata.customer_id,
        )
        return self._fold_on(stream, first, records[1:], generation)

    def _generation(self) -> int:
        personal = self._codec.personal
        return 0 if personal is None else personal.generation

    def _stale(self, cached: Folded[S]) -> bool:
        """Whether a cached state may hold personal data of a customer forgotten since."""
        personal = self._codec.personal
        if personal is None:
            return False
        if cached.customer_id:
            personal.is_forgotten(cached.customer_id)  # another process may have forgotten them
        return cached.generation != personal.generation

    def _fold_from(self, stream: str, start: Folded[S], generation: int) -> tuple[S, int] | None:
        """Fold the events after `start`; None if the stream no longer holds its event."""
        records = self._store.read_stream(stream, from_revision=start.revision)
        if not records or records[0].event_id != start.event_id:
            log.info(
                "%s does not hold %s at %d: folded again", stream, start.event_id, start.revision
            )
            return None
        # The events after the start are checked against it; the start against its own content,
        # and against the hash it had when it was read before (a cached state).
        check_content(records[0])
        if start.content_hash and records[0].content_hash != start.content_hash:
            raise HistoryBroken(records[0], "it changed since it was last read")
        start = replace(
            start,
            content_hash=records[0].content_hash,
            customer_id=records[0].metadata.customer_id,
        )
        return self._fold_on(stream, start, records[1:], generation)

    def _fold_on(
        self, stream: str, start: Folded[S], tail: list[RecordedEvent], generation: int
    ) -> tuple[S, int]:
        """Fold the checked tail of events on the start (a broken chain raises HistoryBroken)."""
        last_hash = verify_links(tail, start.content_hash, start.revision + 1)
        state = start.state
        for record in tail:
            state = self._evolve(state, record)
        folded = start
        if tail:
            last = tail[-1]
            folded = Folded(
                last.revision,
                last.event_id,
                state,
                start.snapshot_revision,
                last_hash,
                last.metadata.customer_id,
            )
        folded = replace(folded, generation=generation)
        due = folded.revision - folded.snapshot_revision >= self._snapshot_every
        if due and self._save_snapshot(stream, folded):
            folded = replace(folded, snapshot_revision=folded.revision)
        self.cache.put(stream, folded)
        return folded.state, folded.revision

    def _evolve(self, state: S | None, record: RecordedEvent) -> S:
        try:
            event = self._codec.decode(record.type, record.data)
        except HistoryBroken:
            raise
        except (IntegrityError, ValueError, TypeError, KeyError) as exc:
            # Its hashes hold (checked before), yet this release cannot read it: a type written
            # by a newer release, or whose upcaster is missing. Refused like broken history
            # (DATA_LOSS and an alert), never folded past.
            raise HistoryBroken(record, f"this release cannot read it: {exc}") from exc
        return self._fold.evolve(state, event, record.metadata.occurred_at)

    def _decoded(self, snapshot: Snapshot) -> Folded[S] | None:
        try:
            data = self._opened(snapshot)
            if data is None:
                return None
            state = decode_state(self._fold, data)
        except (CrmError, ValueError, TypeError, KeyError):
            log.warning(
                "snapshot of %s at %d does not read; folding the stream again",
                snapshot.stream,
                snapshot.revision,
                exc_info=True,
            )
            return None
        return Folded(snapshot.revision, snapshot.event_id, state, snapshot.revision)

    def _opened(self, snapshot: Snapshot) -> bytes | None:
        """The snapshot's state bytes; None if it was sealed for a customer since forgotten."""
        personal = self._codec.personal
        if personal is None:
            return snapshot.state
        data = personal.open_blob(_sealed_as(snapshot.stream), snapshot.state)
        if data is None:
            log.info("snapshot of %s is sealed for a forgotten customer", snapshot.stream)
        return data

    def _save_snapshot(self, stream: str, folded: Folded[S]) -> bool:
        data = encode_state(self._fold, folded.state)
        personal = self._codec.personal
        if personal is not None:
            try:
                data = personal.seal_blob(folded.customer_id, _sealed_as(stream), data)
            except PersonalDataForgotten:  # its state holds placeholders; folding is enough
                return False
        snapshot = Snapshot(stream, folded.revision, folded.event_id, self._fold.version, data)
        try:
            self._store.save_snapshot(snapshot)
        except PersistenceError:  # a snapshot only saves time; the command goes on without it
            log.warning("snapshot of %s at %d not saved", stream, folded.revision, exc_info=True)
            return False
        return True


def _sealed_as(stream: str) -> str:
    """What a snapshot's seal is bound to: its stream, so it cannot stand in for another's."""
    return f"snapshot|{stream}"
