"""A live watch sends every entry once, even when the Kafka path writes one behind another, and
sees entries written by other processes, which ring no signal here.

Workers apply topic partitions independently, so an entry with a lower global position can be
written after a higher one was already sent to a watcher; the watch follows the order entries
are written in, not their positions.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from crm.blocking import BlockingPool
from crm.v1 import timeline_service_pb2
from projections.store.sqlite import SqliteViewStore
from services.timeline.grpc_api import TimelineServicer
from services.timeline.watermark import SharedWatermark
from tests.grpc_client import poll
from tests.support import T0, opened, recorded, registered


def _watch_in_a_thread(
    servicer: TimelineServicer, customer_id: str, count: int, received: list[int]
) -> threading.Thread:
    """A started watch on a loop of its own that ends after `count` entries, noting positions."""

    async def watch() -> None:
        request = timeline_service_pb2.WatchTimelineRequest(customer_id=customer_id)
        async for entry in servicer.WatchTimeline(request, context=None):  # type: ignore[arg-type]
            received.append(entry.global_position)
            if len(received) == count:
                return

    watcher = threading.Thread(target=asyncio.run, args=(watch(),))
    watcher.start()
    return watcher


def test_an_entry_written_behind_one_already_sent_still_reaches_the_watcher(
    tmp_path: Path,
) -> None:
    views = SqliteViewStore(tmp_path / "views.db")
    # The customer topic's partition is behind: the case event (position 2) lands first.
    customer, case = registered("c-1"), opened("k-1", "c-1")
    views.apply([(recorded(case, 2, at=T0), case)], source="crm.case.v1#0")
    io = BlockingPool(2)
    servicer = TimelineServicer(views, threading.Event(), clock=lambda: T0, io=io)
    received: list[int] = []
    watcher = _watch_in_a_thread(servicer, "c-1", 3, received)
    poll(lambda: received == [2])
    views.apply([(recorded(customer, 1, at=T0), customer)], source="crm.customer.v1#0")
    views.notify_changed()
    poll(lambda: received == [2, 1])
    later = opened("k-2", "c-1")
    views.apply([(recorded(later, 3, at=T0), later)], source="crm.case.v1#0")
    views.notify_changed()
    watcher.join(timeout=10)
    assert received == [2, 1, 3]
    io.shutdown()
    views.close()


def test_an_entry_written_by_another_process_reaches_the_watcher_by_polling(
    tmp_path: Path,
) -> None:
    views = SqliteViewStore(tmp_path / "views.db")
    writer = SqliteViewStore(
        tmp_path / "views.db"
    )  # another process's: its writes ring nothing here
    customer = registered("c-1")
    writer.apply([(recorded(customer, 1, at=T0), customer)], source="crm.customer.v1#0")
    io = BlockingPool(2)
    servicer = TimelineServicer(views, threading.Event(), clock=lambda: T0, io=io)
    received: list[int] = []
    watcher = _watch_in_a_thread(servicer, "c-1", 2, received)
    poll(lambda: received == [1])
    case = opened("k-1", "c-1")
    writer.apply([(recorded(case, 2, at=T0), case)], source="crm.case.v1#0")
    watcher.join(timeout=10)
    assert received == [1, 2]
    io.shutdown()
    writer.close()
    views.close()


class CountingViewStore(SqliteViewStore):
    """Counts the watermark reads, to see how many the watches of a process share."""

    reads = 0

    def timeline_watermark(self) -> int:
        self.reads += 1
        return super().timeline_watermark()


def test_concurrent_watermark_asks_share_one_read_until_a_change_or_the_max_age(
    tmp_path: Path,
) -> None:
    views = CountingViewStore(tmp_path / "views.db")
    io = BlockingPool(2)
    watermark = SharedWatermark(views, io, max_age=60)

    async def ask_many() -> list[int]:
        return await asyncio.gather(*(watermark.latest() for _ in range(100)))

    assert asyncio.run(ask_many()) == [0] * 100
    assert views.reads == 1
    customer = registered("c-1")
    views.apply([(recorded(customer, 1, at=T0), customer)], source="crm.customer.v1#0")
    assert asyncio.run(ask_many()) == [0] * 100  # not notified: the cached value stands
    assert views.reads == 1
    views.notify_changed()
    assert asyncio.run(ask_many()) == [1] * 100
    assert views.reads == 2
    io.shutdown()
    views.close()
