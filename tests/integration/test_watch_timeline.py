"""A live watch sends every entry once, even when the Kafka path writes one behind another.

Workers apply topic partitions independently, so an entry with a lower global position can be
written after a higher one was already sent to a watcher; the watch follows the order entries
are written in, not their positions.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from crm.v1 import timeline_service_pb2
from projections.store.sqlite import SqliteViewStore
from services.timeline.grpc_api import TimelineServicer
from tests.grpc_client import poll
from tests.support import T0, opened, recorded, registered


class Context:
    """Just enough of a grpc.ServicerContext for a streaming method."""

    def __init__(self) -> None:
        self.active = True

    def is_active(self) -> bool:
        return self.active


def test_an_entry_written_behind_one_already_sent_still_reaches_the_watcher(
    tmp_path: Path,
) -> None:
    views = SqliteViewStore(tmp_path / "views.db")
    # The customer topic's partition is behind: the case event (position 2) lands first.
    customer, case = registered("c-1"), opened("k-1", "c-1")
    views.apply([(recorded(case, 2, at=T0), case)], source="crm.case.v1#0")
    context = Context()
    servicer = TimelineServicer(views, threading.Event(), clock=lambda: T0)
    stream: Iterator[timeline_service_pb2.TimelineEntry] = servicer.WatchTimeline(
        timeline_service_pb2.WatchTimelineRequest(customer_id="c-1"),
        context,  # type: ignore[arg-type]
    )
    received: list[int] = []

    def watch() -> None:
        for entry in stream:
            received.append(entry.global_position)
            if len(received) == 3:
                context.active = False

    watcher = threading.Thread(target=watch)
    watcher.start()
    poll(lambda: received == [2])
    views.apply([(recorded(customer, 1, at=T0), customer)], source="crm.customer.v1#0")
    views.notify_changed()
    poll(lambda: received == [2, 1])
    later = opened("k-2", "c-1")
    views.apply([(recorded(later, 3, at=T0), later)], source="crm.case.v1#0")
    views.notify_changed()
    watcher.join(timeout=10)
    assert received == [2, 1, 3]
    views.close()
