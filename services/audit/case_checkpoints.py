"""Case views kept at every `EVERY`-th event of a case, so that a case as of a point folds only
the events after the nearest kept view instead of the whole stream.

The as-of fold of services/audit/as_of.py reads, checks and folds a case from its first event;
at 1,000 events that is most of 100 ms. Here a fold from event 0 leaves behind the view at each
`EVERY`-th revision; a later question starts from the newest one at or before its point. Like the
aggregates' cache (crm/folding.py) a kept view remembers the id and content hash of the event it
was folded to and is used only while the stream still holds that event unchanged; the events
after it are hash checked as they are folded. It is a cache: forgetting it changes only speed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from crm.envelope import GENESIS_HASH, RecordedEvent, check_content, verify_links
from crm.errors import HistoryBroken
from crm.eventcodec import EventCodec
from crm.instants import sortable_instant
from projections.case_view import CaseView, case_view_changes
from services.audit.as_of import AsOf, decoded

EVERY = 100
"""Events between kept views: a case as of any point folds at most this many events."""

STREAMS = 1024
"""Cases whose kept views stay in memory (least recently used first out): at ten views of a few
kilobytes per 1,000-event case, some tens of MB at most."""


@dataclass(frozen=True)
class KeptView:
    """The case view folded up to `revision`, where the stream held `event_id` (`content_hash`).

    `latest_recorded` is the latest recorded time among revisions 0..`revision`: a point in time
    takes in the whole of that prefix exactly when it is not before it.
    """

    stream: str
    revision: int
    event_id: str
    content_hash: str
    global_position: int
    latest_recorded: datetime
    view: CaseView

    def within(self, point: AsOf) -> bool:
        """Whether the point takes in every event this view was folded from."""
        if point.position is not None:
            return self.global_position <= point.position
        assert point.recorded_at is not None
        return sortable_instant(self.latest_recorded) <= sortable_instant(point.recorded_at)


class KeptViews:
    """The kept views of the most recently asked cases, safe to share between threads."""

    def __init__(self, streams: int = STREAMS) -> None:
        self._streams = streams
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, dict[int, KeptView]] = OrderedDict()

    def nearest(self, stream: str, point: AsOf) -> KeptView | None:
        """The kept view of the stream folded furthest within the point, None if there is none."""
        with self._lock:
            kept = self._kept.get(stream)
            if kept is None:
                return None
            self._kept.move_to_end(stream)
            found = [view for view in kept.values() if view.within(point)]
        return max(found, key=lambda view: view.revision, default=None)

    def keep(self, stream: str, views: Sequence[KeptView]) -> None:
        if not views:
            return
        with self._lock:
            kept = self._kept.setdefault(stream, {})
            kept.update((view.revision, view) for view in views)
            self._kept.move_to_end(stream)
            while len(self._kept) > self._streams:
                self._kept.popitem(last=False)

    def drop(self, stream: str) -> None:
        """Forget the stream's views (its stream no longer holds the event one was folded to)."""
        with self._lock:
            self._kept.pop(stream, None)


def case_as_of_from(
    start: KeptView | None,
    records: Sequence[RecordedEvent],
    point: AsOf,
    codec: EventCodec,
    every: int = EVERY,
) -> tuple[CaseView | None, list[KeptView]]:
    """The case view within the point, folded on from `start` (None: from event 0), and the views
    to keep at every `every`-th revision passed on the way.

    `records` are the stream's events from `start.revision` on (from 0 without a start).
    HistoryBroken if the stream does not hold `start`'s event unchanged, or a link after it is
    broken: the caller forgets its views and folds from event 0, which checks the whole chain.
    """
    view, previous, revision = None, GENESIS_HASH, 0
    latest: datetime | None = None
    tail = list(records)
    if start is not None:
        if not tail or tail[0].event_id != start.event_id:
            missing = tail[0] if tail else start
            raise HistoryBroken(missing, f"the stream no longer holds event {start.event_id}")
        check_content(tail[0])
        if tail[0].content_hash != start.content_hash:
            raise HistoryBroken(tail[0], "it changed since the case was last folded")
        view, previous, revision = start.view, start.content_hash, start.revision + 1
        latest, tail = start.latest_recorded, tail[1:]
    within = point.prefix(tail)
    verify_links(within, previous, revision)
    kept: list[KeptView] = []
    index = 0
    while index < len(within):
        # Chunks end where a kept view is due: at revisions every - 1, 2 * every - 1, ...
        cut = index + every - within[index].revision % every
        chunk, index = within[index:cut], cut
        for record in chunk:
            if latest is None or sortable_instant(record.recorded_at) > sortable_instant(latest):
                latest = record.recorded_at
        view = _folded(view, chunk, codec)
        last = chunk[-1]
        if view is not None and latest is not None and (last.revision + 1) % every == 0:
            kept.append(
                KeptView(
                    last.stream,
                    last.revision,
                    last.event_id,
                    last.content_hash,
                    last.global_position,
                    latest,
                    view,
                )
            )
    return view, kept


def _folded(
    view: CaseView | None, chunk: Sequence[RecordedEvent], codec: EventCodec
) -> CaseView | None:
    """The view after the chunk, folded by the case view projection's own apply."""
    batch = [decoded(codec, record) for record in chunk]
    case_id = chunk[0].stream.removeprefix("case-")
    return case_view_changes(batch, lambda _case_id: view).get(case_id, view)
