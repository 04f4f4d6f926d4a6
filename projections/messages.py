"""The views' wire form (protobuf): one conversion shared by the query API and the audit API's
as-of views, so a view read live and one folded as of a past point compare field by field; and
one reading of a timeline request, so both page a timeline alike."""

from __future__ import annotations

from crm.grpc_convert import optional_instant
from crm.protocodec import enum_from_proto, enum_to_proto, timestamp, to_message
from crm.v1 import common_pb2, timeline_service_pb2
from crm.validation import require_id
from crm.vocabulary import Channel, Direction
from projections.case_view import CaseView
from projections.store.queries import TimelineQuery
from projections.timeline import EntryKind, TimelineEntry

CHANNEL = common_pb2.Channel.DESCRIPTOR
DIRECTION = common_pb2.Direction.DESCRIPTOR
KIND = timeline_service_pb2.EntryKind.DESCRIPTOR
DEFAULT_TIMELINE_PAGE = 50


def timeline_query(request: timeline_service_pb2.GetTimelineRequest) -> TimelineQuery:
    """The query a GetTimelineRequest asks; InvalidInput naming the field it cannot take."""
    return TimelineQuery(
        customer_id=require_id("customer_id", request.customer_id),
        page_size=request.page_size or DEFAULT_TIMELINE_PAGE,
        page_token=request.page_token,
        newest_first=request.order != timeline_service_pb2.ORDER_OLDEST_FIRST,
        channels=frozenset(
            enum_from_proto(Channel, c, CHANNEL, "channels").value for c in request.channels
        ),
        kinds=frozenset(enum_from_proto(EntryKind, k, KIND, "kinds") for k in request.kinds),
        case_id=request.case_id,
        since=optional_instant(request, "since"),
        until=optional_instant(request, "until"),
    )


def case_view_to_proto(view: CaseView) -> timeline_service_pb2.CaseView:
    """The case view as TimelineService.GetCaseView returns it."""
    reply = to_message(view, timeline_service_pb2.CaseView())
    assert isinstance(reply, timeline_service_pb2.CaseView)
    if view.next_due_at is not None:
        reply.next_due_at.CopyFrom(timestamp(view.next_due_at))
    return reply


def entry_to_proto(entry: TimelineEntry) -> timeline_service_pb2.TimelineEntry:
    """A timeline entry as TimelineService.GetTimeline returns it."""
    reply = timeline_service_pb2.TimelineEntry(
        event_id=entry.event_id,
        global_position=entry.global_position,
        customer_id=entry.customer_id,
        case_id=entry.case_id,
        event_type=entry.event_type,
        actor=entry.actor,
        occurred_at=timestamp(entry.occurred_at),
        summary=entry.summary,
    )
    reply.kind = enum_to_proto(entry.kind, KIND)  # type: ignore[assignment]
    if entry.channel:
        reply.channel = enum_to_proto(Channel(entry.channel), CHANNEL)  # type: ignore[assignment]
    if entry.direction:
        direction = Direction(entry.direction)
        reply.direction = enum_to_proto(direction, DIRECTION)  # type: ignore[assignment]
    return reply
