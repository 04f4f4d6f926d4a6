"""Command handling shared by every service: load a stream, decide, append with its revision.

No business rules live here. What it adds to a service's pure `decide`:
- idempotency: event ids derive from the request id, and the store's request index says whether
  a request id was used before: by this command on this stream, it returns the original result
  without deciding again; by a different command (on any stream), it is refused;
- a queue per stream: commands on one stream from threads of this process take turns
  (crm.stream_queue), so they do not collide;
- loading at a cost independent of history: the newest of a cached state and a snapshot, checked
  against the stream, plus the events after it (crm.folding);
- optimistic concurrency: the append names the revision the decision was based on; on a conflict
  (a writer in another process) the stream is reloaded and the command decided again, a bounded
  number of times.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from crm.envelope import EventMetadata, NewEvent, RecordedEvent, canonical_json
from crm.errors import ConcurrencyConflict, InvalidInput, NotFound
from crm.eventcodec import EventCodec, to_plain
from crm.eventstore.port import EventStore, ExpectedRevision, RequestRecord, StreamState
from crm.folding import CACHE_SIZE, SNAPSHOT_EVERY, Fold, StateLoader
from crm.stream_queue import StreamQueue
from crm.validation import MAX_ID, optional_id, require_id
from crm.vocabulary import Actor

S = TypeVar("S")
E = TypeVar("E")

Clock = Callable[[], datetime]

_NAMESPACE = uuid.UUID("6f1c1d1e-3a52-4c4f-9a8e-5d0c2b7e9a10")
MAX_CLOCK_SKEW = timedelta(minutes=5)
DEFAULT_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
"""No contact centre's history starts before this: an earlier time is a caller's mistake."""
MAX_ATTEMPTS = 8
_FIRST_BACKOFF_SECONDS = 0.002


@dataclass(frozen=True)
class CommandContext:
    """Who asks, when it happened, and the request id that makes retries harmless."""

    request_id: str
    actor: Actor
    occurred_at: datetime
    correlation_id: str = ""
    causation_id: str = ""
    via: Actor | None = None  # the caller, when it acted for `actor`
    teams: frozenset[str] | None = None  # whose cases `actor` may work; None: not kept to teams


@dataclass(frozen=True)
class CommandOutcome:
    """What a command recorded (or had recorded, for a repeated request)."""

    aggregate_id: str
    stream: str
    revision: int
    global_position: int
    event_ids: tuple[str, ...]
    duplicate_request: bool = False


@dataclass(frozen=True)
class Loaded(Generic[S]):
    """An aggregate's state and the revision of its stream it was folded to (-1: no stream)."""

    state: S | None
    revision: int

    @property
    def expected_revision(self) -> ExpectedRevision:
        return self.revision if self.revision >= 0 else StreamState.NO_STREAM


def derived_id(kind: str, request_id: str) -> str:
    """A stable id for something a request creates, so a retry names the same thing."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}|{request_id}"))


def _event_id(request_id: str, stream: str, index: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{request_id}|{stream}|{index}"))


def command_digest(command: Any) -> str:
    """A fingerprint of a command's content, to tell a retry from a reused request id."""
    return hashlib.sha256(canonical_json([type(command).__name__, to_plain(command)])).hexdigest()


class StreamHandler(Generic[S, E]):
    """Loads, decides and appends for one category of streams (`<category>-<id>`)."""

    def __init__(
        self,
        store: EventStore,
        codec: EventCodec,
        category: str,
        fold: Fold[S, E],
        clock: Clock,
        *,
        cache_size: int = CACHE_SIZE,
        snapshot_every: int = SNAPSHOT_EVERY,
        earliest: datetime = DEFAULT_EARLIEST,
    ) -> None:
        self._store = store
        self.earliest = earliest
        self._codec = codec
        self._category = category
        self._clock = clock
        self._queue = StreamQueue()
        self.states: StateLoader[S, E] = StateLoader(
            store, codec, fold, cache_size=cache_size, snapshot_every=snapshot_every
        )

    def stream(self, aggregate_id: str) -> str:
        return f"{self._category}-{aggregate_id}"

    def load(self, aggregate_id: str) -> Loaded[S]:
        state, revision = self.states.load(self.stream(aggregate_id))
        return Loaded(state, revision)

    def load_existing(self, aggregate_id: str, field: str) -> Loaded[S]:
        """Load an aggregate a command refers to; NOT_FOUND names the field that pointed at it."""
        require_id(field, aggregate_id)
        loaded = self.load(aggregate_id)
        if loaded.state is None:
            raise NotFound(f"{self._category} {aggregate_id} does not exist ({field})")
        return loaded

    def history(self, aggregate_id: str) -> list[RecordedEvent]:
        """Every event of the aggregate's stream (for what needs the whole story, not a state)."""
        return self._store.read_stream(self.stream(aggregate_id))

    def recorded_by(self, aggregate_id: str, request_id: str) -> list[RecordedEvent]:
        """The events a request appended to the aggregate's stream, found through the index."""
        stream = self.stream(aggregate_id)
        for record in self._store.find_request(request_id):
            if record.stream == stream:
                first = record.revision - len(record.event_ids) + 1
                wanted = set(record.event_ids)
                events = self._store.read_stream(stream, first, len(record.event_ids))
                return [e for e in events if e.event_id in wanted]
        return []

    def execute(
        self,
        aggregate_id: str,
        context: CommandContext,
        command: Any,
        decide: Callable[[S | None], Sequence[E]],
        customer_id: Callable[[S | None, Sequence[E]], str],
        *,
        must_exist: bool = True,
    ) -> CommandOutcome:
        """Decide `command` against the current stream and append the result, retrying conflicts."""
        check_context(context, self._clock(), self.earliest)
        stream = self.stream(aggregate_id)
        digest = command_digest(command)
        with self._queue.turn(stream):
            for attempt in range(MAX_ATTEMPTS):
                # Asked again on each attempt: the conflict may have been this very request,
                # retried by its caller through another process.
                earlier = self._store.find_request(context.request_id)
                if earlier:
                    repeated = _repeat(aggregate_id, stream, earlier, digest)
                    if repeated is not None:
                        return repeated
                loaded = self.load(aggregate_id)
                if must_exist and loaded.state is None:
                    raise NotFound(f"{self._category} {aggregate_id} does not exist")
                new_events = self._new_events(stream, context, digest, loaded, decide, customer_id)
                try:
                    result = self._store.append(stream, new_events, loaded.expected_revision)
                except ConcurrencyConflict:
                    # Jittered backoff, so writers racing for one stream stop colliding in lockstep.
                    time.sleep(random.uniform(0, _FIRST_BACKOFF_SECONDS * 2**attempt))
                    continue
                return CommandOutcome(
                    aggregate_id,
                    stream,
                    result.revision,
                    result.global_position,
                    tuple(e.event_id for e in new_events),
                )
        raise ConcurrencyConflict(
            f"{stream} kept changing under this command ({MAX_ATTEMPTS} attempts); retry it"
        )

    def _new_events(
        self,
        stream: str,
        context: CommandContext,
        digest: str,
        loaded: Loaded[S],
        decide: Callable[[S | None], Sequence[E]],
        customer_id: Callable[[S | None, Sequence[E]], str],
    ) -> list[NewEvent]:
        events = decide(loaded.state)
        metadata = EventMetadata(
            customer_id=customer_id(loaded.state, events),
            occurred_at=context.occurred_at,
            actor=context.actor,
            correlation_id=context.correlation_id or context.request_id,
            causation_id=context.causation_id,
            request_id=context.request_id,
            command_digest=digest,
            via=context.via,
        )
        new_events = []
        for index, event in enumerate(events):
            type_name, data = self._codec.encode(event)
            event_id = _event_id(context.request_id, stream, index)
            new_events.append(NewEvent(event_id, type_name, data, metadata))
        return new_events


def check_context(
    context: CommandContext, now: datetime, earliest: datetime = DEFAULT_EARLIEST
) -> None:
    """Refuse a command whose context cannot be recorded faithfully."""
    require_id("context.request_id", context.request_id)
    require_id("context.actor.id", context.actor.id)
    optional_id("context.correlation_id", context.correlation_id)
    if len(context.causation_id) > MAX_ID:
        raise InvalidInput("context.causation_id", f"must be at most {MAX_ID} characters")
    if context.occurred_at.tzinfo is None:
        raise InvalidInput("context.occurred_at", "must carry a time zone")
    require_not_before("context.occurred_at", context.occurred_at, earliest)
    if context.occurred_at > now + MAX_CLOCK_SKEW:
        raise InvalidInput(
            "context.occurred_at", f"{context.occurred_at.isoformat()} lies in the future"
        )


def _repeat(
    aggregate_id: str, stream: str, earlier: list[RequestRecord], digest: str
) -> CommandOutcome | None:
    """The original outcome if this command on this stream was recorded under the request id;
    None if it still has to run here (a merge's second stream); refused if the id belongs to
    another command."""
    mine = next((r for r in earlier if r.stream == stream), None)
    if mine is not None and mine.command_digest == digest:
        return CommandOutcome(
            aggregate_id,
            stream,
            mine.revision,
            mine.global_position,
            mine.event_ids,
            duplicate_request=True,
        )
    if any(r.command_digest != digest for r in earlier):
        # Which stream holds the other command is not said: it may be another caller's.
        raise InvalidInput(
            "context.request_id",
            "was already used for a different command; send a new request id",
        )
    return None


def require_not_before(field: str, value: datetime, earliest: datetime) -> None:
    """Refuse an instant before the earliest the system accepts (the `earliest_occurred_at`
    setting): years like 1 or 1970 are mistakes, not history."""
    if value < earliest:
        raise InvalidInput(
            field, f"{value.isoformat()} is before {earliest.isoformat()}, the earliest accepted"
        )
