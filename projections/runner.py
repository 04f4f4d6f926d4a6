"""Runs the projections inside the server process (embedded mode) and rebuilds views from event 0.

The same pure projection code runs here, in replay and in the Kafka workers; this runner only
feeds it in global order from the lowest checkpoint of the projections it runs (each projection
skips what it applied before), decoding each event once for all of them. A failing batch is logged
and retried, never skipped: a view missing an event would silently disagree with history.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import cast

from crm.envelope import RecordedEvent
from crm.errors import InvalidInput, InvariantViolated
from crm.eventcodec import EventCodec
from crm.eventstore.port import EventStore, Subscription
from projections.catalogue import PROJECTION_NAMES, projection_named
from projections.store.port import ViewStore
from services.events import DomainEvent

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 200
_FIRST_BACKOFF_SECONDS = 0.05
_MAX_BACKOFF_SECONDS = 5.0


def decode_batch(
    codec: EventCodec, events: list[RecordedEvent]
) -> list[tuple[RecordedEvent, DomainEvent]]:
    """Pair each recorded event with its domain event, as the view store applies them."""
    return [(event, cast(DomainEvent, codec.decode(event.type, event.data))) for event in events]


class InProcessProjector:
    """A background thread that follows the event store and keeps projections up to date."""

    def __init__(
        self,
        store: EventStore,
        read_store: ViewStore,
        codec: EventCodec,
        *,
        projections: Sequence[str] = PROJECTION_NAMES,
        batch_size: int = DEFAULT_BATCH_SIZE,
        poll_interval: float = 0.5,
    ) -> None:
        if batch_size < 1:
            raise InvalidInput("batch_size", "must be at least 1")
        self._store = store
        self._read_store = read_store
        self._codec = codec
        self._projections = _known(projections)
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._stopped = threading.Event()
        self._subscription: Subscription | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start following the store from the read store's checkpoint."""
        if self._thread is not None:
            raise InvariantViolated("the projector was started already; create a new one")
        self._thread = threading.Thread(target=self._run, name="projector", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop after the batch in hand is applied; True if the thread ended within `timeout`."""
        self._stopped.set()
        with self._lock:
            if self._subscription is not None:
                self._subscription.stop()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wait_until(self, position: int, timeout: float) -> bool:
        """True once the projection has applied `position`; False when the timeout passes first."""
        deadline = time.monotonic() + timeout
        while self._checkpoint() < position:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # Short waits: a change signalled between the check and the wait is not lost for long.
            self._read_store.wait_for_change(min(remaining, 0.05))
        return True

    def _checkpoint(self) -> int:
        """Where the slowest of this runner's projections stands."""
        return min(self._read_store.checkpoint(name) for name in self._projections)

    def _run(self) -> None:
        backoff = _FIRST_BACKOFF_SECONDS
        while not self._stopped.is_set():
            try:
                self._follow()
                return
            except Exception:
                # The store failed while reading: resubscribe from the checkpoint after a pause.
                log.exception(
                    "projections %s: reading the event store failed; retrying in %.2fs",
                    ",".join(self._projections),
                    backoff,
                )
                self._stopped.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)

    def _follow(self) -> None:
        after = self._checkpoint()
        subscription = self._store.subscribe(after=after, poll_interval=self._poll_interval)
        with self._lock:
            if self._stopped.is_set():
                return
            self._subscription = subscription
        for batch in self._batches(iter(subscription)):
            self._apply_until_done(batch)
            if self._stopped.is_set():
                return

    def _batches(self, events: Iterator[RecordedEvent]) -> Iterator[list[RecordedEvent]]:
        """Group what is already stored into batches; only an empty batch waits for appends."""
        batch: list[RecordedEvent] = []
        head = 0
        for event in events:
            if not batch:
                # Everything up to the current head can be read without waiting.
                head = self._store.last_position()
            batch.append(event)
            if len(batch) >= self._batch_size or event.global_position >= head:
                yield batch
                batch = []
        if batch:
            yield batch

    def _apply_until_done(self, events: list[RecordedEvent]) -> None:
        """Apply one batch, retrying with backoff until it succeeds or the projector stops."""
        backoff = _FIRST_BACKOFF_SECONDS
        while True:
            try:
                batch = decode_batch(self._codec, events)
                self._read_store.apply(batch, projections=self._projections)
                self._read_store.notify_changed()
                return
            except Exception:
                # Log the batch's span: one of its events cannot be applied (and is not skipped).
                log.exception(
                    "projections %s: applying events %s..%s (first id %s, last id %s) failed;"
                    " retrying in %.2fs",
                    ",".join(self._projections),
                    events[0].global_position,
                    events[-1].global_position,
                    events[0].event_id,
                    events[-1].event_id,
                    backoff,
                )
            if self._stopped.wait(backoff):
                return
            backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)


def rebuild(
    store: EventStore,
    read_store: ViewStore,
    codec: EventCodec,
    *,
    projections: Sequence[str] = PROJECTION_NAMES,
    batch_size: int = 500,
) -> int:
    """Replay every event from the first into empty projections; returns the last position.

    This is how an auditor proves a view follows from history: rebuild it and compare with live.
    """
    for name in _known(projections):
        if (position := read_store.checkpoint(name)) != 0:
            raise InvariantViolated(
                f"projection {name} is at position {position}; rebuild needs it empty"
            )
    position = 0
    while events := store.read_all(after=position, limit=batch_size):
        read_store.apply(decode_batch(codec, events), projections=projections)
        position = events[-1].global_position
    read_store.notify_changed()
    return position


def _known(projections: Sequence[str]) -> tuple[str, ...]:
    """The names, checked: a typo must not silently track a projection nobody reads."""
    if not projections:
        raise InvalidInput("projections", "name at least one projection")
    return tuple(projection_named(name).name for name in projections)
