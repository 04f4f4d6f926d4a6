"""Runs the projections inside the server process (embedded mode) and rebuilds views from event 0.

The same pure projection code runs here, in replay and in the Kafka workers; this runner only
feeds it in global order, through the kernel's follow loop, from the lowest checkpoint of the
projections it runs (each skips what it applied before), decoding each event once for all of
them. A failing batch is logged and retried, never skipped: a view missing an event would
silently disagree with history.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import cast

from crm.envelope import RecordedEvent
from crm.errors import InvalidInput, InvariantViolated
from crm.eventcodec import EventCodec
from crm.eventstore.port import EventStore
from crm.follow import Follower
from projections.catalogue import PROJECTION_NAMES, projection_named
from projections.store.port import ViewStore
from services.events import DomainEvent

DEFAULT_BATCH_SIZE = 200


def decode_batch(
    codec: EventCodec, events: list[RecordedEvent]
) -> list[tuple[RecordedEvent, DomainEvent]]:
    """Pair each recorded event with its domain event, as the view store applies them.

    Events stored as an older version come upcast, under their current type name (see
    `EventCodec.decode_recorded`): every projection, live, rebuilt or folded up to a position,
    sees what the Kafka workers see. An as-of reader folds what this returns.
    """
    pairs = [codec.decode_recorded(event) for event in events]
    return [(recorded, cast(DomainEvent, event)) for recorded, event in pairs]


class InProcessProjector:
    """A background thread that follows the event store and keeps projections up to date."""

    def __init__(
        self,
        store: EventStore,
        views: ViewStore,
        codec: EventCodec,
        *,
        projections: Sequence[str] = PROJECTION_NAMES,
        batch_size: int = DEFAULT_BATCH_SIZE,
        poll_interval: float = 0.5,
    ) -> None:
        self._views = views
        self._codec = codec
        self._projections = _known(projections)
        # The view store's checkpoints, written with the views, say where each read starts.
        self._follower = Follower(
            store,
            f"projections {','.join(self._projections)}",
            checkpoint=self._checkpoint,
            handle=self._apply,
            idle=lambda: poll_interval,
            batch_size=batch_size,
        )
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start following the store from the view store's checkpoints."""
        if self._thread is not None:
            raise InvariantViolated("the projector was started already; create a new one")
        self._thread = threading.Thread(target=self._follower.run, name="projector", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop after the batch in hand is applied; True if the thread ended within `timeout`."""
        self._follower.stop()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wait_until(self, position: int, timeout: float) -> bool:
        """True once every projection has applied `position`; False when the timeout passes."""
        deadline = time.monotonic() + timeout
        while self._checkpoint() < position:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # Short waits: a change signalled between the check and the wait is not lost for long.
            self._views.wait_for_change(min(remaining, 0.05))
        return True

    def _checkpoint(self) -> int:
        """Where the slowest of this runner's projections stands."""
        return min(self._views.checkpoint(name) for name in self._projections)

    def _apply(self, events: list[RecordedEvent]) -> None:
        """Write one batch's view changes with the checkpoints; a failure is retried by the loop."""
        self._views.apply(decode_batch(self._codec, events), projections=self._projections)
        self._views.notify_changed()


REBUILD_BATCH_SIZE = 10_000
"""Events a rebuild reads, decodes and applies per transaction: large, so that per-transaction
costs (the commit, reading each projection's checkpoint) vanish, yet a batch's decoded events and
rows stay a few tens of megabytes."""

Progress = Callable[[int, int], None]
"""Told after every batch of a rebuild: events applied so far, and the global position reached."""


def rebuild(
    store: EventStore,
    views: ViewStore,
    codec: EventCodec,
    *,
    projections: Sequence[str] = PROJECTION_NAMES,
    batch_size: int = REBUILD_BATCH_SIZE,
    progress: Progress | None = None,
    resume: bool = False,
) -> int:
    """Replay every event from the first into empty projections; returns the last position.

    This is how an auditor proves a view follows from history: rebuild it and compare with live.
    Each event is decoded once for all the projections; the view store applies each batch in
    one transaction with the checkpoints, knowing it replays (`ViewStore.replaying`). With
    `resume`, projections a rebuild left unfinished (a crash, Ctrl-C) continue from their
    checkpoints instead of being refused.
    """
    names = _known(projections)
    checkpoints = [views.checkpoint(name) for name in names]
    if not resume:
        for name, position in zip(names, checkpoints, strict=True):
            if position != 0:
                raise InvariantViolated(
                    f"projection {name} is at position {position}; rebuild needs it empty"
                )
    position = min(checkpoints)
    done = 0
    with views.replaying():
        while events := store.read_all(after=position, limit=batch_size):
            views.apply(decode_batch(codec, events), projections=names)
            position = events[-1].global_position
            done += len(events)
            if progress is not None:
                progress(done, position)
    views.notify_changed()
    return position


def _known(projections: Sequence[str]) -> tuple[str, ...]:
    """The names, checked: a typo must not silently track a projection nobody reads."""
    if not projections:
        raise InvalidInput("projections", "name at least one projection")
    return tuple(projection_named(name).name for name in projections)
