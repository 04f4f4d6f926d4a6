"""An in-memory stand-in for a KurrentDB server, as the adapter's client sees it.

It lets the whole event store conformance suite run against the KurrentDB adapter's logic here,
where no server can be installed. It behaves as this project reads the server's documentation
and kurrentdbclient's source, which no run against a real server has confirmed yet:

- an append is atomic and gives each event a commit position of its own, growing with gaps (the
  server's log also holds its own records, and `$$<stream>` metadata events take positions too);
- an append at an exact version (or NO_STREAM) whose events are already there, same ids in the
  same places, succeeds again without writing and returns the original commit position; any other
  mismatch is WrongCurrentVersionError; ANY with ids already in the stream is idempotent too;
- reading `$all` from a commit position includes the event at it; a catch-up subscription from a
  commit position starts after it; filters are regexes the client anchors at both ends;
- a stream's `$maxCount` metadata hides all but its newest events from reads of that stream.
"""

from __future__ import annotations

import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import kurrentdbclient as kdb
from kurrentdbclient import exceptions as kdb_errors
from kurrentdbclient.common import AbstractCatchupSubscription, AbstractReadResponse

FIRST_POSITION = 1_000  # the server writes records of its own before any event


class FakeKurrentDB:
    """One in-memory server; several stores may share it, as processes share a real one."""

    def __init__(self, *, one_position_per_append: bool = False) -> None:
        # True gives every event of an append the same commit position: a server that does so
        # would break the adapter's global order, which must then refuse to read.
        self._one_position_per_append = one_position_per_append
        self._changed = threading.Condition()
        self._log: list[kdb.RecordedEvent] = []
        self._streams: dict[str, list[kdb.RecordedEvent]] = {}
        self._max_count: dict[str, int] = {}
        self._next_position = FIRST_POSITION
        self.unavailable_for: set[str] = set()  # appends to these streams fail as if cut off
        self.refused_subscriptions = 0  # this many subscriptions fail before one is taken
        # Run once just before the next append to a stream: another writer that gets there first.
        self.before_append: dict[str, Callable[[], object]] = {}

    # --- writing ---------------------------------------------------------------------------

    def append_to_stream(
        self,
        /,
        stream_name: str,
        *,
        events: Iterable[kdb.NewEvent],
        current_version: int | kdb.StreamState,
    ) -> int:
        new = list(events)
        interloper = self.before_append.pop(stream_name, None)
        if interloper is not None:
            interloper()
        with self._changed:
            if stream_name in self.unavailable_for:
                raise kdb_errors.ServiceUnavailableError(f"{stream_name}: connection lost")
            stream = self._streams.setdefault(stream_name, [])
            end = len(stream) - 1
            ids = [e.id for e in new]
            if current_version is kdb.StreamState.ANY:
                first = next((i for i, e in enumerate(stream) if e.id == ids[0]), None)
                if first is not None and [e.id for e in stream[first : first + len(ids)]] == ids:
                    return stream[first + len(ids) - 1].commit_position
            elif current_version is kdb.StreamState.EXISTS:
                raise NotImplementedError("the adapter never appends with EXISTS")
            else:
                after = -1 if current_version is kdb.StreamState.NO_STREAM else current_version
                assert isinstance(after, int)
                if end != after:
                    there = [e.id for e in stream[after + 1 : after + 1 + len(ids)]]
                    if there == ids:
                        return stream[after + len(ids)].commit_position
                    raise kdb_errors.WrongCurrentVersionError(
                        f"{stream_name}: at {end}, not {after}",
                        stream_name=stream_name,
                        actual_version=end,
                        expected_version=current_version,
                    )
            return self._write(stream_name, stream, new)

    def _write(
        self, stream_name: str, stream: list[kdb.RecordedEvent], new: list[kdb.NewEvent]
    ) -> int:
        for n, event in enumerate(new):
            if n == 0 or not self._one_position_per_append:
                self._next_position += 17 + len(event.data) // 64  # gaps, as records take room
            recorded = kdb.RecordedEvent(
                type=event.type,
                data=event.data,
                metadata=event.metadata,
                content_type=event.content_type,
                id=event.id,
                stream_name=stream_name,
                stream_position=len(stream),
                commit_position=self._next_position,
                prepare_position=self._next_position,
                recorded_at=datetime.now(UTC),
            )
            stream.append(recorded)
            self._log.append(recorded)
        self._changed.notify_all()
        return self._next_position

    def set_stream_metadata(self, stream_name: str, *, metadata: dict[str, Any]) -> None:
        with self._changed:
            self._max_count[stream_name] = int(metadata["$maxCount"])
            meta_stream = f"$${stream_name}"
            event = kdb.NewEvent(type="$metadata", data=repr(metadata).encode(), id=uuid.uuid4())
            self._write(meta_stream, self._streams.setdefault(meta_stream, []), [event])

    # --- reading ---------------------------------------------------------------------------

    def get_stream(
        self,
        stream_name: str,
        *,
        stream_position: int | None = None,
        backwards: bool = False,
        limit: int = sys.maxsize,
    ) -> tuple[kdb.RecordedEvent, ...]:
        with self._changed:
            if stream_name not in self._streams:
                raise kdb_errors.NotFoundError(f"Stream {stream_name!r} not found")
            stream = list(self._streams[stream_name])
        kept = self._max_count.get(stream_name)
        if kept is not None:
            stream = stream[-kept:]
        if backwards:
            top = sys.maxsize if stream_position is None else stream_position
            return tuple([e for e in reversed(stream) if e.stream_position <= top][:limit])
        bottom = stream_position or 0
        return tuple([e for e in stream if e.stream_position >= bottom][:limit])

    def read_all(
        self,
        *,
        commit_position: int | None = None,
        backwards: bool = False,
        filter_include: Sequence[str] = (),
        filter_by_stream_name: bool = False,
        limit: int = sys.maxsize,
    ) -> AbstractReadResponse:
        wanted = _matcher(filter_include, filter_by_stream_name)
        with self._changed:
            log = [e for e in self._log if wanted(e)]
        if backwards:
            top = sys.maxsize if commit_position is None else commit_position
            return FakeRead([e for e in reversed(log) if e.commit_position <= top][:limit])
        bottom = commit_position or 0
        return FakeRead([e for e in log if e.commit_position >= bottom][:limit])

    def subscribe_to_all(
        self,
        *,
        commit_position: int | None = None,
        from_end: bool = False,
        filter_include: Sequence[str] = (),
        filter_by_stream_name: bool = False,
    ) -> AbstractCatchupSubscription:
        with self._changed:
            if self.refused_subscriptions > 0:
                self.refused_subscriptions -= 1
                raise kdb_errors.ServiceUnavailableError("subscription refused")
            if from_end:
                start = self._log[-1].commit_position if self._log else 0
            else:
                start = commit_position or -1
        return FakeSubscription(self, start, _matcher(filter_include, filter_by_stream_name))

    def events_after(self, position: int) -> list[kdb.RecordedEvent]:
        """What a subscription has not delivered yet (called under the condition's lock)."""
        return [e for e in self._log if e.commit_position > position]

    def close(self) -> None:
        """Nothing to release; a real client closes its channel."""


def _matcher(patterns: Sequence[str], by_stream: bool) -> Any:
    regex = re.compile("^" + "|".join(patterns) + "$") if patterns else None

    def wanted(event: kdb.RecordedEvent) -> bool:
        subject = event.stream_name if by_stream else event.type
        return regex is None or regex.match(subject) is not None

    return wanted


class FakeRead(AbstractReadResponse):
    """A finished read: the events it found, handed out one by one."""

    def __init__(self, events: list[kdb.RecordedEvent]) -> None:
        super().__init__()
        self._events = iter(events)

    def __next__(self) -> kdb.RecordedEvent:
        return next(self._events)

    def stop(self, *, cancel: bool = False) -> None:
        """Nothing to cancel: the events were read at once."""


class FakeSubscription(AbstractCatchupSubscription):
    """A catch-up subscription: waits for events after its position until stopped."""

    def __init__(self, server: FakeKurrentDB, after: int, wanted: Any) -> None:
        super().__init__()
        self._server = server
        self._after = after
        self._wanted = wanted
        self._stopped = False

    @property
    def subscription_id(self) -> str:
        return f"fake-{id(self)}"

    def __next__(self) -> kdb.RecordedEvent:
        with self._server._changed:
            while not self._stopped:
                for event in self._server.events_after(self._after):
                    self._after = event.commit_position
                    if self._wanted(event):
                        return event
                self._server._changed.wait(0.5)
        raise StopIteration

    def stop(self, *, cancel: bool = False) -> None:
        with self._server._changed:
            self._stopped = True
            self._server._changed.notify_all()
