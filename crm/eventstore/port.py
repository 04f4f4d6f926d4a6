"""The event store port: append with an expected revision, read a stream, read the global order.

Revisions are zero-based per stream; global positions start at 1 and grow in commit order, so a
reader that has applied position N asks for everything after N and never misses an event.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from crm.doorbell import Doorbell, ring_across_processes
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
        self._doorbell: Doorbell | None = None

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

    def close(self) -> None:
        """Release the doorbell; adapters that hold connections close them and call this too."""
        if self._doorbell is not None:
            self._doorbell.close()

    def ring_across_processes(self, store_file: Path) -> None:
        """Wake followers in every process that opened the same file (crm/doorbell.py), for
        adapters whose database cannot notify by itself."""
        self._doorbell = ring_across_processes(self.appended, store_file)

    def notify_appended(self) -> None:
        """Wake followers in this process (crm.follow); adapters call it after each commit."""
        self.appended.notify()
