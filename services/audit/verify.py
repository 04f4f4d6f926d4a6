"""Verification of a history's hash chains, stream by stream, reporting each stream's first break.

Each stream is checked from its first event (the genesis hash) with crm.envelope's own rule, plus
one rule the chain cannot state: global positions grow with revisions within a stream. A stream
whose share of the history ends early (a profile released from a merge) is checked up to there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from crm.envelope import GENESIS_HASH, RecordedEvent, verify_links
from crm.errors import HistoryBroken
from services.audit.lineage import within


@dataclass(frozen=True)
class Break:
    """Where a stream's chain first breaks, and what is wrong there."""

    stream: str
    revision: int
    global_position: int
    problem: str


@dataclass(frozen=True)
class Head:
    """How far a stream was checked, and the hash it ends on."""

    stream: str
    events: int
    last_revision: int
    head_hash: str


@dataclass
class Verification:
    """What a verification found: counts, each stream's head, and the breaks, earliest first."""

    events_checked: int = 0
    heads: list[Head] = field(default_factory=list)
    breaks: list[Break] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks


def verify_streams(
    streams: dict[str, int | None], read: Callable[[str], list[RecordedEvent]]
) -> Verification:
    """Check every stream (with the position its share ends at) as `read` returns it."""
    result = Verification()
    for stream in sorted(streams):
        try:
            events = [e for e in read(stream) if within(e.global_position, streams[stream])]
        except HistoryBroken as unreadable:  # a row altered so far that it no longer decodes
            result.breaks.append(_break(unreadable))
            result.heads.append(Head(stream, 0, -1, ""))
            continue
        checked, head, broken = _check(events)
        result.events_checked += checked
        if broken is not None:
            result.breaks.append(broken)
        last = events[-1].revision if events else -1
        result.heads.append(Head(stream, checked, last, head))
    result.breaks.sort(key=lambda b: b.global_position)
    return result


def _check(events: list[RecordedEvent]) -> tuple[int, str, Break | None]:
    """(events taken, the head hash or "" when broken, the first break) of one stream."""
    taken = 0

    def in_global_order() -> Iterator[RecordedEvent]:
        nonlocal taken
        previous = 0
        for event in events:
            taken += 1
            if event.global_position <= previous:
                raise HistoryBroken(event, f"its global position is not after {previous}")
            previous = event.global_position
            yield event

    try:
        head = verify_links(in_global_order(), GENESIS_HASH, 0)
    except HistoryBroken as broken:
        return taken, "", _break(broken)
    return taken, head, None


def _break(broken: HistoryBroken) -> Break:
    # The message names the place first; the break carries the place apart.
    problem = str(broken).split(": ", 1)[-1]
    return Break(broken.stream, broken.revision, broken.global_position, problem)
