"""The audit API's as-of views: requests read, streams read from the event store, views folded.

The folding itself is pure (services/audit/as_of.py); this module checks the point against the
store's head and the clock, reads the streams on the blocking pool and answers in the messages
the live APIs answer with.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from crm.blocking import BlockingPool
from crm.envelope import RecordedEvent
from crm.errors import HistoryBroken, InvalidInput, NotFound
from crm.eventcodec import EventCodec
from crm.eventstore.port import EventStore
from crm.instants import sortable_instant
from crm.protocodec import instant
from crm.v1 import audit_service_pb2, common_pb2, timeline_service_pb2
from crm.validation import require_id
from projections.case_view import CaseView
from projections.messages import case_view_to_proto, entry_to_proto
from projections.messages import timeline_query as live_timeline_query
from projections.store.memory_timeline import timeline_page
from projections.store.queries import TimelineQuery
from services.audit.as_of import AsOf, customer_as_of, timeline_as_of
from services.audit.case_checkpoints import KeptView, KeptViews, case_as_of_from
from services.audit.history import HistoryReader, Subject
from services.customer.grpc_api import customer_to_proto

CHANNEL = common_pb2.Channel.DESCRIPTOR
KIND = timeline_service_pb2.EntryKind.DESCRIPTOR
READ_PAGE = 400  # events read at a time: a case as of an early point reads little of a long one


class AsOfReader:
    """Reads and folds the views as of a point (blocking: run it on the pool)."""

    def __init__(
        self,
        store: EventStore,
        history: HistoryReader,
        codec: EventCodec,
        clock: Callable[[], datetime],
        kept: KeptViews | None = None,
    ) -> None:
        self._store = store
        self._history = history
        self._codec = codec
        self._clock = clock
        self.kept = KeptViews() if kept is None else kept

    def case_view(self, case_id: str, point: AsOf) -> CaseView:
        """The case view as of the point, from the nearest kept view; NotFound before the case."""
        self._check(point)
        stream = f"case-{case_id}"
        start = self.kept.nearest(stream, point)
        try:
            view = self._fold_case(stream, start, point)
        except HistoryBroken:
            if start is None:
                raise
            self.kept.drop(stream)  # the stream changed under the kept view: check it all
            view = self._fold_case(stream, None, point)
        if view is None:
            raise NotFound(f"case {case_id} was not opened yet at {_said(point)}")
        return view

    def _fold_case(self, stream: str, start: KeptView | None, point: AsOf) -> CaseView | None:
        records = self._read_within(stream, 0 if start is None else start.revision, point)
        view, kept = case_as_of_from(start, records, point, self._codec)
        self.kept.keep(stream, kept)
        return view

    def _read_within(self, stream: str, from_revision: int, point: AsOf) -> list[RecordedEvent]:
        """The stream from `from_revision` until a page ends beyond the point (or the stream)."""
        records: list[RecordedEvent] = []
        while True:
            page = self._store.read_stream(
                stream, from_revision=from_revision + len(records), limit=READ_PAGE
            )
            records.extend(page)
            if len(page) < READ_PAGE or not point.includes(page[-1]):
                return records

    def customer(self, customer_id: str, point: AsOf) -> audit_service_pb2.CustomerAsOf:
        self._check(point)
        stream = self._store.read_stream(f"customer-{customer_id}")
        if self._codec.personal is not None:  # a forget by another process, before a cached key
            self._codec.personal.is_forgotten(customer_id)
        found = customer_as_of(stream, point, self._codec)
        if found is None:
            raise NotFound(f"customer {customer_id} was not registered yet at {_said(point)}")
        state, last = found
        return audit_service_pb2.CustomerAsOf(
            customer=customer_to_proto(state, last.revision), last_position=last.global_position
        )

    def timeline(self, query: TimelineQuery, point: AsOf) -> audit_service_pb2.TimelineAsOf:
        self._check(point)
        customer_id = query.customer_id
        own = self._store.read_stream(f"customer-{customer_id}", limit=1)
        if not own or not point.includes(own[0]):
            raise NotFound(f"customer {customer_id} was not registered yet at {_said(point)}")
        streams = {
            stream: self._store.read_stream(stream)
            for stream in self._history.streams(Subject("customer", customer_id))
        }
        entries = timeline_as_of(customer_id, streams, point, self._codec)
        page = timeline_page(entries, query)
        return audit_service_pb2.TimelineAsOf(
            page=timeline_service_pb2.TimelinePage(
                entries=[entry_to_proto(e) for e in page.entries],
                next_page_token=page.next_page_token,
            ),
            last_position=entries[-1].global_position,
        )

    def _check(self, point: AsOf) -> None:
        """Refuse a point past what the store holds or in the future: its view could change."""
        if point.position is not None:
            head = self._store.last_position()
            if point.position > head:
                raise InvalidInput(
                    "as_of.global_position",
                    f"{point.position} lies beyond the store's newest event ({head})",
                )
        elif point.recorded_at is not None:
            now = self._clock()
            if sortable_instant(point.recorded_at) > sortable_instant(now):
                raise InvalidInput(
                    "as_of.recorded_at",
                    f"{point.recorded_at.isoformat()} is in the future (the server's clock reads"
                    f" {now.isoformat()}); read the live view instead",
                )


class AsOfViews:
    """Answers GetCaseAsOf, GetCustomerAsOf and GetTimelineAsOf (store reads on the pool)."""

    def __init__(self, reader: AsOfReader, io: BlockingPool) -> None:
        self._reader = reader
        self._io = io

    async def case(
        self, request: audit_service_pb2.GetCaseAsOfRequest
    ) -> audit_service_pb2.CaseAsOf:
        case_id = require_id("case_id", request.case_id)
        view = await self._io.run(self._reader.case_view, case_id, _point(request.as_of))
        return audit_service_pb2.CaseAsOf(
            case=case_view_to_proto(view), last_position=view.last_position
        )

    async def customer(
        self, request: audit_service_pb2.GetCustomerAsOfRequest
    ) -> audit_service_pb2.CustomerAsOf:
        customer_id = require_id("customer_id", request.customer_id)
        return await self._io.run(self._reader.customer, customer_id, _point(request.as_of))

    async def timeline(
        self, request: audit_service_pb2.GetTimelineAsOfRequest
    ) -> audit_service_pb2.TimelineAsOf:
        query = timeline_query(request.timeline)
        return await self._io.run(self._reader.timeline, query, _point(request.as_of))


def _point(message: audit_service_pb2.AsOf) -> AsOf:
    """The request's point; neither given is refused by AsOf, naming `as_of`."""
    chosen = message.WhichOneof("point")
    if chosen == "global_position":
        return AsOf(position=message.global_position)
    if chosen == "recorded_at":
        return AsOf(recorded_at=instant(message.recorded_at, "as_of.recorded_at"))
    return AsOf()


def _said(point: AsOf) -> str:
    if point.position is not None:
        return f"global position {point.position}"
    assert point.recorded_at is not None
    return point.recorded_at.isoformat()


def timeline_query(request: timeline_service_pb2.GetTimelineRequest) -> TimelineQuery:
    """The query of a GetTimelineRequest, checked as GetTimeline checks it; a refusal names the
    field inside `timeline` (`timeline.page_size: ...`)."""
    try:
        return live_timeline_query(request)
    except InvalidInput as refused:
        said = str(refused).removeprefix(f"{refused.field}: ")
        raise InvalidInput(f"timeline.{refused.field}", said) from None
