"""TimelineService servicer: what agents read, from the read store the projections maintain."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc

from crm.commands import Clock
from crm.errors import NotFound
from crm.grpc_convert import optional_instant
from crm.protocodec import enum_from_proto, enum_to_proto, timestamp, to_message
from crm.readstore.port import EscalationQuery, ReadStore, TimelineQuery
from crm.v1 import case_events_pb2, common_pb2, timeline_service_pb2, timeline_service_pb2_grpc
from crm.validation import require_id
from crm.vocabulary import Channel, Direction
from projections.case_view import CaseView
from projections.timeline import EntryKind, TimelineEntry
from services.case.escalation import EscalationReason

CHANNEL = common_pb2.Channel.DESCRIPTOR
DIRECTION = common_pb2.Direction.DESCRIPTOR
KIND = timeline_service_pb2.EntryKind.DESCRIPTOR
REASON = case_events_pb2.EscalationReason.DESCRIPTOR
WATCH_BATCH = 200
WATCH_POLL_SECONDS = 0.5


class TimelineServicer(timeline_service_pb2_grpc.TimelineServiceServicer):
    def __init__(self, read_store: ReadStore, stopping: threading.Event, clock: Clock) -> None:
        self._views = read_store
        self._stopping = stopping
        self._clock = clock

    def GetTimeline(
        self, request: timeline_service_pb2.GetTimelineRequest, context: grpc.ServicerContext
    ) -> timeline_service_pb2.TimelinePage:
        query = TimelineQuery(
            customer_id=require_id("customer_id", request.customer_id),
            page_size=request.page_size or 50,
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
        page = self._views.timeline(query)
        return timeline_service_pb2.TimelinePage(
            entries=[entry_to_proto(e) for e in page.entries],
            next_page_token=page.next_page_token,
        )

    def WatchTimeline(
        self, request: timeline_service_pb2.WatchTimelineRequest, context: grpc.ServicerContext
    ) -> Iterator[timeline_service_pb2.TimelineEntry]:
        customer_id = require_id("customer_id", request.customer_id)
        position = request.after_position
        while context.is_active() and not self._stopping.is_set():
            entries = self._views.entries_after(customer_id, position, WATCH_BATCH)
            for entry in entries:
                position = entry.global_position
                yield entry_to_proto(entry)
            if len(entries) < WATCH_BATCH:
                self._views.wait_for_change(WATCH_POLL_SECONDS)

    def GetCaseView(
        self, request: timeline_service_pb2.GetCaseViewRequest, context: grpc.ServicerContext
    ) -> timeline_service_pb2.CaseView:
        case_id = require_id("case_id", request.case_id)
        view = self._views.case_view(case_id)
        if view is None:
            raise NotFound(f"case {case_id} has no view (unknown, or not projected yet)")
        return case_view_to_proto(view)

    def ListEscalatedCases(
        self, request: timeline_service_pb2.ListEscalatedCasesRequest, context: grpc.ServicerContext
    ) -> timeline_service_pb2.EscalatedCases:
        reason = (
            enum_from_proto(EscalationReason, request.reason, REASON, "reason").value
            if request.reason
            else ""
        )
        min_age = request.min_age.ToTimedelta() if request.HasField("min_age") else None
        query = EscalationQuery(
            min_level=request.min_level or 1,
            team=request.team,
            reason=reason,
            escalated_before=None if min_age is None else self._clock() - min_age,
            limit=request.limit or 100,
        )
        views = self._views.escalated_cases(query)
        return timeline_service_pb2.EscalatedCases(cases=[case_view_to_proto(v) for v in views])

    def GetCustomerRisk(
        self, request: timeline_service_pb2.GetCustomerRiskRequest, context: grpc.ServicerContext
    ) -> timeline_service_pb2.CustomerRisk:
        risk = self._views.customer_risk(require_id("customer_id", request.customer_id))
        reply = timeline_service_pb2.CustomerRisk(
            customer_id=risk.customer_id,
            at_risk=risk.at_risk,
            escalated_cases=[
                timeline_service_pb2.CustomerRisk.EscalatedCase(case_id=case_id, level=level)
                for case_id, level in risk.escalated_cases
            ],
        )
        if risk.latest_feedback_reason:
            reason = EscalationReason(risk.latest_feedback_reason)
            reply.latest_feedback_reason = enum_to_proto(reason, REASON)  # type: ignore[assignment]
        return reply


def case_view_to_proto(view: CaseView) -> timeline_service_pb2.CaseView:
    reply = to_message(view, timeline_service_pb2.CaseView())
    assert isinstance(reply, timeline_service_pb2.CaseView)
    if view.next_due_at is not None:
        reply.next_due_at.CopyFrom(timestamp(view.next_due_at))
    return reply


def entry_to_proto(entry: TimelineEntry) -> timeline_service_pb2.TimelineEntry:
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
