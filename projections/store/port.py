"""The view store port: the projections' views and their checkpoints, changed together or not
at all.

Each projection keeps its own checkpoint per source (crm/tracking.py); `apply` writes a batch's view
changes and moves the checkpoint of every projection it applies in one transaction, skipping
events at or below that projection's checkpoint, so a crash cannot separate the two and
redelivery (at-least-once, from the store or Kafka) changes nothing.

Blue/green rebuilds: a projection's tables exist per generation, one of them active. A rebuild
fills a new generation beside the active one (`begin_generation`, `apply(generation=...)`), then
`switch` brings it up to the active one's head and makes it active in one write transaction.
Queries and `apply` resolve the active generation inside their own transaction, so a reader sees
all of one generation, and a live writer (the in-process projector, a Kafka worker) that commits
after the switch writes the new generation from its checkpoint there: nothing it writes is lost.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

from crm.doorbell import Doorbell, ring_across_processes
from crm.notify import ChangeSignal
from crm.tracking import Tracking
from projections.case_view import CaseView
from projections.catalogue import PROJECTION_NAMES, Batch
from projections.follow_ups import FollowUp
from projections.kpi_report import KpiQuery, KpiReport
from projections.risk import CustomerRisk
from projections.store.queries import (
    EscalationQuery,
    FollowUpQuery,
    TimelinePage,
    TimelineQuery,
)
from projections.timeline import TimelineEntry


@dataclass(frozen=True)
class Generations:
    """A projection's active generation (queries and live writers use it) and the one a rebuild
    is filling beside it, if any (never read by a query)."""

    active: int
    building: int | None = None


CatchUp = Callable[[int, int], Batch]
"""The decoded events after the first position up to the second, from the event store: what a
new generation still lacks of the live one when it is switched in."""


class ViewStore(Tracking):
    """Port every view store adapter implements; one conformance suite runs against each."""

    def __init__(self) -> None:
        self._changed = ChangeSignal()
        self._doorbell: Doorbell | None = None

    @abstractmethod
    def checkpoint(self, consumer: str, source: str = "", generation: int | None = None) -> int:
        """The position of the last event the projection `consumer` applied from `source`, 0 if
        none, in its active generation or in `generation`."""

    @abstractmethod
    def apply(
        self,
        batch: Batch,
        source: str = "",
        projections: Sequence[str] = PROJECTION_NAMES,
        generation: int | None = None,
    ) -> None:
        """Apply the named projections to the batch and move their checkpoints, in one transaction.

        Each projection ignores the events at or below its checkpoint of `source`, so applying
        a batch twice changes nothing. Each writes its active generation, resolved inside the
        transaction, or `generation` (one projection only: its active one or the one being
        built; another is refused with InvariantViolated). Unknown projection names, or none,
        are refused (InvalidInput) before anything is written.
        """

    @abstractmethod
    def generations(self, projection: str) -> Generations:
        """The projection's active generation and the one a rebuild is filling, if any."""

    @abstractmethod
    def begin_generation(self, projection: str) -> int:
        """The generation a rebuild fills: the one an interrupted rebuild left, or else a new,
        empty one beside the active one (at position 0)."""

    @abstractmethod
    def switch(self, projection: str, generation: int, catch_up: CatchUp) -> int:
        """In one write transaction: apply to `generation` (the one being built) what it lacks
        up to the furthest position the active generation applied (`catch_up` reads it), and
        make it the active one. Returns the generation it replaced, which stays until dropped.
        InvariantViolated if `generation` is not the one being built."""

    @abstractmethod
    def drop_generation(self, projection: str, generation: int) -> None:
        """Drop a generation's tables and checkpoints; refused (InvariantViolated) for the
        active one and the one being built."""

    @abstractmethod
    def rebuild_lock(self, projection: str) -> AbstractContextManager[None]:
        """Held by one rebuild of the projection at a time, across processes, and freed if its
        holder dies; a second is refused at once with InvariantViolated."""

    @abstractmethod
    def timeline(self, query: TimelineQuery) -> TimelinePage:
        """One page of a customer's timeline, merged duplicates included."""

    @abstractmethod
    def case_view(self, case_id: str) -> CaseView | None:
        """The case's current view, None if no event of it was applied."""

    @abstractmethod
    def escalated_cases(self, query: EscalationQuery) -> list[CaseView]:
        """Escalated cases, most urgent first: highest level, nearest SLA due, longest escalated."""

    @abstractmethod
    def follow_ups(self, query: FollowUpQuery) -> list[FollowUp]:
        """Resolved or closed cases that got negative feedback since and were not reopened,
        most recent feedback first."""

    @abstractmethod
    def customer_risk(self, customer_id: str) -> CustomerRisk:
        """Whether the customer is at risk now, and why (merged duplicates count)."""

    @abstractmethod
    def kpis(self, query: KpiQuery) -> KpiReport:
        """Every KPI of the period per group, with the counts behind each ratio."""

    @abstractmethod
    def timeline_members(self, customer_id: str) -> frozenset[str]:
        """The customer and every profile merged into it now (projections.lineage's rule)."""

    @abstractmethod
    def entries_after(
        self, customer_id: str, after_position: int, limit: int
    ) -> list[TimelineEntry]:
        """Entries of the customer (merged duplicates included) after a position, oldest first."""

    @abstractmethod
    def timeline_watermark(self) -> int:
        """The application sequence of the newest timeline entry (0 for none).

        Entries are numbered in the order they were written, which on the Kafka path is not the
        global order (partitions interleave): a live watch follows this number so an entry that
        lands behind one already sent is still sent.
        """

    @abstractmethod
    def writers_after(self, after_sequence: int, limit: int) -> list[tuple[int, str, str]]:
        """(sequence, customer id, event type) of entries written after a sequence, in the order
        written: which timelines a batch touched, read once for every live watch."""

    @abstractmethod
    def entries_applied_after(
        self, customer_id: str, after_sequence: int, limit: int
    ) -> tuple[list[TimelineEntry], int]:
        """Entries of the customer written after a sequence number, and the last number read."""

    @contextmanager
    def replaying(self) -> Iterator[None]:
        """This thread is about to replay history into the projections, batch after batch.

        An adapter may keep what the thread writes in memory for its next batches and tune
        itself for bulk writes; what `apply` writes is the same with or without it. The default
        does nothing special.
        """
        yield

    def close(self) -> None:
        """Release the doorbell; adapters that hold connections close them and call this too."""
        if self._doorbell is not None:
            self._doorbell.close()

    def ring_across_processes(self, store_file: Path) -> None:
        """Wake watchers in every process that opened the same file (crm/doorbell.py): a query
        API whose views a Kafka worker writes learns of each applied batch at once."""
        self._doorbell = ring_across_processes(self._changed, store_file)

    def notify_changed(self) -> None:
        """Wake watchers in this process; runners call it after each applied batch."""
        self._changed.notify()

    def wait_for_change(self, timeout: float) -> None:
        """Block until a change (in this process, or rung by another) or the timeout."""
        self._changed.wait(timeout)

    @property
    def change_generation(self) -> int:
        """How many changes were notified so far; read it before reading views, then wait on it."""
        return self._changed.generation

    async def changed(self, timeout: float, seen: int) -> int:
        """Await a change notified after generation `seen`, or the timeout, holding no thread.

        Returns the generation to pass next time (changes by other processes are polled).
        """
        return await self._changed.wait_async(timeout, seen)
