"""ExportStore: the whole store in global order as ExportHistory lines, so a kept seal can be
checked outside the system (deploy/verify_export.py --seal recomputes the global chain).

The lines are streamed batch by batch from the event store's global order, never the whole store
at once; the end is fixed when the call begins, so events recorded during the export do not
stretch it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from crm.blocking import BlockingPool
from crm.envelope import RecordedEvent
from crm.errors import InvalidInput
from crm.eventstore.port import EventStore
from crm.v1 import audit_service_pb2
from crm.validation import MAX_POSITION, require_range
from services.audit.export import export_line

BATCH = 500
Describe = Callable[[RecordedEvent], str]


class StoreExport:
    """The ExportStore call: the end checked once, then every event up to it, in batches."""

    def __init__(self, store: EventStore, io: BlockingPool) -> None:
        self._store = store
        self._io = io

    async def end(self, request: audit_service_pb2.ExportStoreRequest) -> int:
        """The last position to export; INVALID_ARGUMENT naming `up_to` beyond the head."""
        up_to = require_range("up_to", request.up_to, 0, MAX_POSITION)
        head = await self._io.run(self._store.last_position)
        if up_to > head:
            raise InvalidInput(
                "up_to", f"is beyond the store's head, global position {head} (0: the head)"
            )
        return up_to or head

    async def lines(
        self, up_to: int, describe: Describe, batch: int = BATCH
    ) -> AsyncIterator[audit_service_pb2.ExportLine]:
        """Every event from global position 1 to `up_to`, one export line each."""
        after = 0
        while after < up_to:
            events = await self._io.run(self._store.read_all, after, batch)
            for event in events:
                if event.global_position > up_to:
                    return
                yield audit_service_pb2.ExportLine(json=export_line(event, describe(event)))
            if len(events) < batch:
                return
            after = events[-1].global_position
