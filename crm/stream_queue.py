"""Commands on one stream queue inside a process instead of colliding.

Optimistic concurrency turns two writers of one stream into a winner and a loser that must load
and decide again; within one process that is wasted work (and, under load, ABORTED callers), so
command handling holds a lock per stream from load to append. Locks exist while someone holds or
waits for them, so the table stays as small as the number of streams being written right now.
Writers in other processes still meet the store's expected-revision check.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Entry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0  # holding or waiting


class StreamQueue:
    """One lock per stream, created on demand and dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    @contextmanager
    def turn(self, stream: str) -> Iterator[None]:
        """Wait for the stream's turn, then hold it for the block."""
        with self._guard:
            entry = self._entries.get(stream)
            if entry is None:
                entry = self._entries[stream] = _Entry()
            entry.users += 1
        try:
            with entry.lock:
                yield
        finally:
            with self._guard:
                entry.users -= 1
                if entry.users == 0:
                    del self._entries[stream]

    def __len__(self) -> int:
        """Streams with a lock right now (held or awaited)."""
        with self._guard:
            return len(self._entries)
