"""The timeline watermark read once for every watch of a process, so idle watches cost nothing.

Watches poll for entries written by other processes (the Kafka workers), whose changes ring no
signal here. If each of N watches read its own entries at each poll, N idle watches would cost
N reads per interval; asking this first costs one read per interval for all of them, and a
watch reads its entries only when the watermark moved past what it has seen.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from dataclasses import dataclass

from crm.blocking import BlockingPool
from projections.store.port import ViewStore
from services.customer.events import (
    CustomerMerged,
    CustomerMergeUndone,
    DuplicateAbsorbed,
    DuplicateReleased,
)


@dataclass(frozen=True)
class _Read:
    generation: int
    value: asyncio.Future[int]


class SharedWatermark:
    """`ViewStore.timeline_watermark`, shared by concurrent callers and reused for `max_age`.

    A change notified in this process (a new generation) makes the next call read again, so
    only changes by other processes can be seen up to `max_age` late. Use it on one event loop.
    """

    def __init__(self, views: ViewStore, io: BlockingPool, max_age: float) -> None:
        self._views = views
        self._io = io
        self._max_age = max_age
        self._value = 0
        self._generation = -1  # of the cached value: the change generation read before it
        self._read_at = 0.0
        self._reading: _Read | None = None

    async def latest(self) -> int:
        """The watermark, read at or after the latest change notified in this process."""
        generation = self._views.change_generation
        if generation == self._generation and time.monotonic() - self._read_at < self._max_age:
            return self._value
        if self._reading is None or self._reading.generation != generation:
            value = asyncio.ensure_future(self._read(generation))
            value.add_done_callback(_retrieve)  # awaited by no one if every caller was cancelled
            self._reading = _Read(generation, value)
        # shield: a cancelled watch must not cancel the read the others await.
        return await asyncio.shield(self._reading.value)

    async def _read(self, generation: int) -> int:
        """Read the watermark; `generation` was read before, so a later change makes it stale."""
        started = time.monotonic()
        try:
            value = await self._io.run(self._views.timeline_watermark)
        finally:
            if self._reading is not None and self._reading.generation == generation:
                self._reading = None
        if generation >= self._generation:
            self._value, self._generation, self._read_at = value, generation, started
        return value


def _retrieve(done: asyncio.Future[int]) -> None:
    if not done.cancelled():
        done.exception()


MERGE_EVENT_TYPES = frozenset(
    cls.TYPE for cls in (CustomerMerged, CustomerMergeUndone, DuplicateAbsorbed, DuplicateReleased)
)


@dataclass(frozen=True)
class Touched:
    """Which timelines entries written in a span of sequence numbers belong to."""

    customers: frozenset[str]
    merges: bool  # a merge link changed: whose history a timeline includes may have changed


class SharedWriters:
    """Which customers' timelines each batch touched, read once for every watch of a process.

    Without it every watch would read its own entries after every applied batch, so N open
    watches cost N reads a batch even when the batch touched none of their customers. Keeps the
    last `keep` writes; a watch that asks about an older span gets None and reads as before.
    Use it on one event loop.
    """

    def __init__(self, views: ViewStore, io: BlockingPool, keep: int = 50_000) -> None:
        self._views = views
        self._io = io
        self._keep = keep
        self._sequences: list[int] = []
        self._writes: list[tuple[str, bool]] = []
        self._base = -1  # no write at or below this is known (-1: nothing read yet)
        self._top = 0  # every write up to this is known
        self._lock = asyncio.Lock()

    async def touched(self, after: int, upto: int) -> Touched | None:
        """The timelines written in (after, upto]; None when that span is no longer kept."""
        async with self._lock:
            if self._base < 0:
                self._base = self._top = after
            while self._top < upto:
                rows = await self._io.run(self._views.writers_after, self._top, 1_000)
                if not rows:
                    break
                for sequence, customer_id, event_type in rows:
                    self._sequences.append(sequence)
                    self._writes.append((customer_id, event_type in MERGE_EVENT_TYPES))
                self._top = rows[-1][0]
            if len(self._sequences) > self._keep:
                cut = len(self._sequences) - self._keep
                self._base = self._sequences[cut - 1]
                del self._sequences[:cut], self._writes[:cut]
        if after < self._base or self._top < upto:
            return None
        first = bisect.bisect_right(self._sequences, after)
        last = bisect.bisect_right(self._sequences, upto)
        span = self._writes[first:last]
        return Touched(frozenset(c for c, _ in span), any(merge for _, merge in span))
