"""The event store port: append with an expected revision, read a stream, follow the global order.

Revisions are zero-based per stream; global positions start at 1 and grow in commit order, so a
reader that has applied position N asks for everything after N and never misses an event.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum

from crm.envelope import NewEvent, RecordedEvent
from crm.notify import ChangeSignal


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


class EventStore(ABC):
    """Port every event store adapter implements; the shared conformance suite checks each one."""

    def __init__(self) -> None:
        self.appended = ChangeSignal()

    @abstractmethod
    def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedRevision
    ) -> AppendResult:
        """Append atomically if the stream is at `expected`, else raise ConcurrencyConflict.

        Re-appending events whose ids are already recorded in the stream, in the same order,
        writes nothing and returns the original result (retries are harmless).
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

    def close(self) -> None:  # noqa: B027 - optional hook: adapters without connections keep it
        """Release connections; the default holds none."""

    def subscribe(self, after: int = 0, poll_interval: float = 0.5) -> Subscription:
        """Catch up from `after`, then follow new events until stopped."""
        return Subscription(self, after, poll_interval)

    def notify_appended(self) -> None:
        """Wake subscribers in this process; adapters call it after each commit."""
        self.appended.notify()


class Subscription:
    """A catch-up subscription: yields every event after a position, then follows new ones."""

    def __init__(self, store: EventStore, after: int, poll_interval: float) -> None:
        self._store = store
        self._position = after
        self._poll_interval = poll_interval
        self._stopped = threading.Event()

    @property
    def position(self) -> int:
        """The global position of the last event handed out."""
        return self._position

    def __iter__(self) -> Iterator[RecordedEvent]:
        signal = self._store.appended
        while not self._stopped.is_set():
            # Taken before reading, so an append committed during the read is not waited for.
            seen = signal.generation
            batch = self._store.read_all(after=self._position, limit=500)
            for event in batch:
                if self._stopped.is_set():
                    return
                self._position = event.global_position
                yield event
            if not batch:
                # Appends by other processes are not signalled: the timeout makes them polled.
                signal.wait(self._poll_interval, seen)

    def stop(self) -> None:
        self._stopped.set()
        self._store.notify_appended()
