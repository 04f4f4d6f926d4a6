"""The SLA timers of open cases in a priority queue keyed by instant, invalidated lazily (pure).

Rescanning every open case for due timers after each event cost the deadline process a third of
a server's CPU under load. Here each case's timers are armed when that case changes, and only
then; the queue pops the instants that have come. A timer is never removed from the heap when its
case changes (that would be a linear search): arming a case again gives it a new serial number,
and an entry whose serial is not its case's current one is skipped when it reaches the top.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from services.case.sla_facts import SlaDue

AT_RISK = "at_risk"
BREACHED = "breached"


@dataclass(frozen=True)
class Timer:
    """One instant at which a fact falls due: `kind` is AT_RISK or BREACHED for `due`'s target."""

    instant: datetime
    due: SlaDue
    kind: str


@dataclass(frozen=True)
class _Armed:
    serial: int
    rank: int
    timers: tuple[Timer, ...]


_Entry = tuple[datetime, int, int, str]
"""(instant, serial, index of the timer in its arming, case id): serials are unique, so two
entries never compare by case id."""

_COMPACT_SLACK = 1024


class TimerQueue:
    """The timers of every open case, earliest first.

    `arm(case_id, rank, timers)` states a case's timers as they are now (in the order a scan of
    the case would find them); `due(now)` returns the timers whose instant has come, ordered by the
    cases' ranks, then by their order in the case. A timer stays due until its case is armed with
    different timers or disarmed (the fact was recorded, the case paused, was fulfilled or closed),
    so a command that failed is offered again.
    """

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._armed: dict[str, _Armed] = {}
        self._fired: dict[tuple[int, int], _Entry] = {}  # popped, still valid, not yet disarmed
        self._serials = 0
        self._live = 0  # timers armed now, heap or fired

    def arm(self, case_id: str, rank: int, timers: tuple[Timer, ...]) -> None:
        """The case's timers from now on (empty while it is paused, resolved, fulfilled ...)."""
        armed = self._armed.get(case_id)
        if armed is not None and armed.timers == timers and armed.rank == rank:
            return  # nothing changed: the entries in the heap are still the case's timers
        self._serials += 1
        self._armed[case_id] = _Armed(self._serials, rank, timers)
        self._live += len(timers) - (0 if armed is None else len(armed.timers))
        for index, timer in enumerate(timers):
            heapq.heappush(self._heap, (timer.instant, self._serials, index, case_id))
        self._compact()

    def disarm(self, case_id: str) -> None:
        """The case is closed: none of its timers will fire."""
        armed = self._armed.pop(case_id, None)
        if armed is not None:
            self._live -= len(armed.timers)

    def due(self, now: datetime) -> list[tuple[str, Timer]]:
        """(case id, timer) of every valid timer whose instant is at or before `now`."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if self._valid(entry):
                self._fired[(entry[1], entry[2])] = entry
        self._drop_invalid_fired()
        found = [
            (self._armed[case_id].rank, index, case_id)
            for instant, _, index, case_id in self._fired.values()
            if instant <= now
        ]
        found.sort()
        return [(case_id, self._armed[case_id].timers[index]) for _, index, case_id in found]

    def next_instant(self) -> datetime | None:
        """The earliest instant of a valid timer, None when none is armed."""
        heap = self._heap
        while heap and not self._valid(heap[0]):
            heapq.heappop(heap)
        self._drop_invalid_fired()
        instants = [entry[0] for entry in self._fired.values()]
        if heap:
            instants.append(heap[0][0])
        return min(instants, default=None)

    def __iter__(self) -> Iterator[tuple[str, Timer]]:
        """Every armed timer (for inspection and tests), in no particular order."""
        for case_id, armed in self._armed.items():
            for timer in armed.timers:
                yield case_id, timer

    def _valid(self, entry: _Entry) -> bool:
        armed = self._armed.get(entry[3])
        return armed is not None and armed.serial == entry[1]

    def _drop_invalid_fired(self) -> None:
        if self._fired:
            self._fired = {key: e for key, e in self._fired.items() if self._valid(e)}

    def _compact(self) -> None:
        """Drop stale entries once they outnumber the live ones: amortised O(1) per arming."""
        if len(self._heap) > 2 * self._live + _COMPACT_SLACK:
            self._heap = [entry for entry in self._heap if self._valid(entry)]
            heapq.heapify(self._heap)
