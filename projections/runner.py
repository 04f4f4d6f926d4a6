"""Runs the projections inside the server process (embedded mode) and rebuilds views from event 0.

The same pure projection code runs here, in replay and in the Kafka workers; this runner only
feeds it in global order from the read store's checkpoint, through the kernel's follow loop. A
failing batch is logged and retried, never skipped: a view missing an event would silently
disagree with history.
"""

from __future__ import annotations

import threading
import time
from typing import cast

from crm.envelope import RecordedEvent
from crm.errors import InvariantViolated
from crm.eventcodec import EventCodec
from crm.eventstore.port import EventStore
from crm.follow import Follower
from crm.readstore.port import VIEWS, ReadStore
from services.events import CODEC, DomainEvent

DEFAULT_BATCH_SIZE = 200


def decode_batch(
    codec: EventCodec, events: list[RecordedEvent]
) -> list[tuple[RecordedEvent, DomainEvent]]:
    """Pair each recorded event with its domain event, as the read store applies them."""
    return [(event, cast(DomainEvent, codec.decode(event.type, event.data))) for event in events]


class InProcessProjector:
    """A background thread that follows the event store and keeps one projection up to date."""

    def __init__(
        self,
        store: EventStore,
        read_store: ReadStore,
        codec: EventCodec = CODEC,
        *,
        projection: str = VIEWS,
        batch_size: int = DEFAULT_BATCH_SIZE,
        poll_interval: float = 0.5,
    ) -> None:
        self._read_store = read_store
        self._codec = codec
        self._projection = projection
        # The read store's checkpoint, written with the views, says where each read starts.
        self._follower = Follower(
            store,
            f"projection {projection}",
            checkpoint=lambda: read_store.checkpoint(projection),
            handle=self._apply,
            idle=lambda: poll_interval,
            batch_size=batch_size,
        )
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start following the store from the read store's checkpoint."""
        if self._thread is not None:
            raise InvariantViolated("the projector was started already; create a new one")
        self._thread = threading.Thread(
            target=self._follower.run, name=f"projector-{self._projection}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop after the batch in hand is applied; True if the thread ended within `timeout`."""
        self._follower.stop()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wait_until(self, position: int, timeout: float) -> bool:
        """True once the projection has applied `position`; False when the timeout passes first."""
        deadline = time.monotonic() + timeout
        while self._read_store.checkpoint(self._projection) < position:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # Short waits: a change signalled between the check and the wait is not lost for long.
            self._read_store.wait_for_change(min(remaining, 0.05))
        return True

    def _apply(self, events: list[RecordedEvent]) -> None:
        """Write one batch's view changes with the checkpoint; a failure is retried by the loop."""
        self._read_store.apply(self._projection, decode_batch(self._codec, events))
        self._read_store.notify_changed()


def rebuild(
    store: EventStore,
    read_store: ReadStore,
    codec: EventCodec = CODEC,
    *,
    projection: str = VIEWS,
    batch_size: int = 500,
) -> int:
    """Replay every event from the first into an empty read store; returns the last position.

    This is how an auditor proves a view follows from history: rebuild it and compare with live.
    """
    position = read_store.checkpoint(projection)
    if position != 0:
        raise InvariantViolated(
            f"projection {projection} is at position {position}; rebuild needs an empty read store"
        )
    while events := store.read_all(after=position, limit=batch_size):
        read_store.apply(projection, decode_batch(codec, events))
        position = events[-1].global_position
    read_store.notify_changed()
    return position
