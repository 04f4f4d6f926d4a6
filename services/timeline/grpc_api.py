"""TimelineService servicer: what agents read, from the view store the projections maintain."""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

from crm.blocking import BlockingPool
from crm.command_handling import Clock
from crm.errors import InvalidInput, NotFound
from crm.grpc_convert import Context
from crm.protocodec import duration, enum_from_proto, enum_to_proto, timestamp, to_message
from crm.v1 import case_events_pb2, common_pb2, timeline_service_pb2, timeline_service_pb2_grpc
from crm.validation import MAX_POSITION, require_id, require_range
from crm.vocabulary import Channel
from projections.follow_ups import FollowUp
from projections.kpi_report import Durations, KpiGroup, KpiQuery, KpiReport, Ratio
from projections.messages import case_view_to_proto, entry_to_proto, timeline_query
from projections.store.port import ViewStore
from projections.store.queries import EscalationQuery, FollowUpQuery
from services.case.escalation import EscalationReason
from services.case.events import Category
from services.timeline.watermark import SharedWatermark, SharedWriters

CHANNEL = common_pb2.Channel.DESCRIPTOR
DIRECTION = common_pb2.Direction.DESCRIPTOR
KIND = timeline_service_pb2.EntryKind.DESCRIPTOR
REASON = case_events_pb2.EscalationReason.DESCRIPTOR
CATEGORY = case_events_pb2.Category.DESCRIPTOR
DIMENSION = timeline_service_pb2.KpiDimension.DESCRIPTOR
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
WATCH_BATCH = 200
WATCH_POLL_SECONDS = 0.5


class TimelineServicer(timeline_service_pb2_grpc.TimelineServiceServicer):
    """The query API; view-store reads run on the blocking pool, watches wait on no thread."""

    def __init__(
        self, view_store: ViewStore, stopping: threading.Event, clock: Clock, io: BlockingPool
    ) -> None:
        self._views = view_store
        self._stopping = stopping
        self._clock = clock
        self._io = io
        # One watermark read per poll for all idle watches, not one per watch.
        self._watermark = SharedWatermark(view_store, io, max_age=WATCH_POLL_SECONDS)
        self._writers = SharedWriters(view_store, io)

    async def GetTimeline(
        self, request: timeline_service_pb2.GetTimelineRequest, context: Context
    ) -> timeline_service_pb2.TimelinePage:
        query = timeline_query(request)
        page = await self._io.run(self._views.timeline, query)
        return timeline_service_pb2.TimelinePage(
            entries=[entry_to_proto(e) for e in page.entries],
            next_page_token=page.next_page_token,
        )

    async def WatchTimeline(
        self, request: timeline_service_pb2.WatchTimelineRequest, context: Context
    ) -> AsyncIterator[timeline_service_pb2.TimelineEntry]:
        customer_id = require_id("customer_id", request.customer_id)
        # A global position is an SQLite INTEGER: a signed 64-bit number.
        position = require_range("after_position", request.after_position, 0, MAX_POSITION)
        views, io = self._views, self._io
        # Read before the views: a change notified while reading wakes the first wait at once.
        seen = views.change_generation
        # History first, in global order; then whatever is written after, in the order it is
        # written (on the Kafka path an entry can land behind one already sent).
        sequence = covered = await io.run(views.timeline_watermark)
        sent: set[str] = set()
        while entries := await io.run(views.entries_after, customer_id, position, WATCH_BATCH):
            for entry in entries:
                sent.add(entry.event_id)
                yield entry_to_proto(entry)
            position = entries[-1].global_position
        # Ends when the server stops (it sets the flag, then notifies) or the call is cancelled
        # (the await raises CancelledError); the flag is checked after `seen` was taken, so a
        # stop can never slip between the check and the wait.
        members = await io.run(views.timeline_members, customer_id)
        while not self._stopping.is_set():
            # Every entry up to `covered` was written before the last read of our entries.
            if (latest := await self._watermark.latest()) > covered:
                touched = await self._writers.touched(covered, latest)
                if (
                    touched is not None
                    and not touched.merges
                    and members.isdisjoint(touched.customers)
                ):
                    # Nothing of ours was written since: skip the read every other watch
                    # would otherwise make too.
                    covered = sequence = latest
                    sent.clear()
                    seen = await views.changed(WATCH_POLL_SECONDS, seen)
                    continue
                if touched is None or touched.merges:
                    members = await io.run(views.timeline_members, customer_id)
                entries, sequence = await io.run(
                    views.entries_applied_after, customer_id, sequence, WATCH_BATCH
                )
                for entry in entries:
                    if entry.event_id not in sent:
                        yield entry_to_proto(entry)
                if len(entries) == WATCH_BATCH:
                    continue
                covered = latest
                sent.clear()  # everything read from here on was written after the history
            seen = await views.changed(WATCH_POLL_SECONDS, seen)

    async def GetCaseView(
        self, request: timeline_service_pb2.GetCaseViewRequest, context: Context
    ) -> timeline_service_pb2.CaseView:
        case_id = require_id("case_id", request.case_id)
        view = await self._io.run(self._views.case_view, case_id)
        if view is None:
            raise NotFound(f"case {case_id} has no view (unknown, or not projected yet)")
        return case_view_to_proto(view)

    async def ListEscalatedCases(
        self, request: timeline_service_pb2.ListEscalatedCasesRequest, context: Context
    ) -> timeline_service_pb2.EscalatedCases:
        reason = (
            enum_from_proto(EscalationReason, request.reason, REASON, "reason").value
            if request.reason
            else ""
        )
        min_age = duration(request.min_age, "min_age") if request.HasField("min_age") else None
        query = EscalationQuery(
            min_level=request.min_level or 1,
            team=request.team,
            reason=reason,
            escalated_before=None if min_age is None else _age_cutoff(self._clock(), min_age),
            limit=request.limit or 100,
        )
        views = await self._io.run(self._views.escalated_cases, query)
        return timeline_service_pb2.EscalatedCases(cases=[case_view_to_proto(v) for v in views])

    async def GetCustomerRisk(
        self, request: timeline_service_pb2.GetCustomerRiskRequest, context: Context
    ) -> timeline_service_pb2.CustomerRisk:
        risk = await self._io.run(
            self._views.customer_risk, require_id("customer_id", request.customer_id)
        )
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

    async def ListFollowUps(
        self, request: timeline_service_pb2.ListFollowUpsRequest, context: Context
    ) -> timeline_service_pb2.FollowUps:
        query = FollowUpQuery(team=request.team, limit=request.limit or 100)
        listed = await self._io.run(self._views.follow_ups, query)
        return timeline_service_pb2.FollowUps(follow_ups=[follow_up_to_proto(f) for f in listed])

    async def GetKpis(
        self, request: timeline_service_pb2.GetKpisRequest, context: Context
    ) -> timeline_service_pb2.KpiReport:
        query = KpiQuery(
            since=_day("since", request.since),
            until=_day("until", request.until),
            group_by=frozenset(_dimension(d) for d in request.group_by),
            channel=(
                enum_from_proto(Channel, request.channel, CHANNEL, "channel").value
                if request.channel
                else ""
            ),
            team=request.team,
            category=(
                enum_from_proto(Category, request.category, CATEGORY, "category").value
                if request.category
                else ""
            ),
        )
        return kpi_report_to_proto(await self._io.run(self._views.kpis, query))


def _day(field: str, text: str) -> date:
    """A UTC day written YYYY-MM-DD; anything else names the field."""
    if not text:
        raise InvalidInput(field, "is required (YYYY-MM-DD)")
    try:
        if _DAY.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise InvalidInput(field, f"must be a day written YYYY-MM-DD, not {text[:40]!r}")


def _dimension(number: int) -> str:
    """The query's name of a dimension ("day" ...); unspecified or unknown ones are refused."""
    value = DIMENSION.values_by_number.get(number)
    if value is None or number == 0:
        names = ", ".join(v.name for v in DIMENSION.values if v.number != 0)
        raise InvalidInput("group_by", f"must list dimensions among {names}")
    return value.name.removeprefix("KPI_DIMENSION_").lower()


def kpi_report_to_proto(report: KpiReport) -> timeline_service_pb2.KpiReport:
    return timeline_service_pb2.KpiReport(
        since=report.since.isoformat(),
        until=report.until.isoformat(),
        group_by=[
            timeline_service_pb2.KpiDimension.Value(f"KPI_DIMENSION_{d.upper()}")
            for d in report.group_by
        ],
        groups=[_group_to_proto(group) for group in report.groups],
    )


def _group_to_proto(group: KpiGroup) -> timeline_service_pb2.KpiGroup:
    aht, nps, ces = group.average_handling_time, group.nps, group.ces
    reply = timeline_service_pb2.KpiGroup(
        day=group.day,
        team=group.team,
        answer_rate=_ratio(group.answer_rate),
        first_contact_resolution=_ratio(group.first_contact_resolution),
        retention=_ratio(group.retention),
        first_response_time=_durations(group.first_response_time),
        resolution_time=_durations(group.resolution_time),
        average_handling_time=timeline_service_pb2.KpiHandlingTime(
            value_seconds=aht.value,
            handled_contacts=aht.handled,
            talk_seconds=aht.talk_seconds,
            hold_seconds=aht.hold_seconds,
            after_work_seconds=aht.after_work_seconds,
        ),
        csat=_ratio(group.csat),
        nps=timeline_service_pb2.KpiNps(
            value=nps.value,
            promoters=nps.promoters,
            passives=nps.passives,
            detractors=nps.detractors,
            responses=nps.responses,
        ),
        ces=timeline_service_pb2.KpiMean(value=ces.value, total=ces.total, count=ces.count),
        sla_attainment=_ratio(group.sla_attainment),
        transfers_per_case=_ratio(group.transfers_per_case),
        reopen_rate=_ratio(group.reopen_rate),
        backlog=group.backlog,
        escalation_rate=_ratio(group.escalation_rate),
        bot_containment=_ratio(group.bot_containment),
        hand_over_rate=_ratio(group.hand_over_rate),
    )
    if group.channel:
        reply.channel = enum_to_proto(Channel(group.channel), CHANNEL)  # type: ignore[assignment]
    if group.category:
        category = Category(group.category)
        reply.category = enum_to_proto(category, CATEGORY)  # type: ignore[assignment]
    return reply


def _ratio(ratio: Ratio) -> timeline_service_pb2.KpiRatio:
    return timeline_service_pb2.KpiRatio(
        value=ratio.value, numerator=ratio.numerator, denominator=ratio.denominator
    )


def _age_cutoff(now: datetime, min_age: timedelta) -> datetime:
    """Escalated at least `min_age` before `now`; an age reaching past year 1 stops there."""
    earliest = datetime.min.replace(tzinfo=UTC)
    return now - min_age if min_age < now - earliest else earliest


def _durations(durations: Durations) -> timeline_service_pb2.KpiDurations:
    return timeline_service_pb2.KpiDurations(
        count=durations.count,
        median_seconds=durations.median,
        p90_seconds=durations.p90,
        total_seconds=durations.total,
    )


def follow_up_to_proto(listed: FollowUp) -> timeline_service_pb2.FollowUp:
    reply = timeline_service_pb2.FollowUp(
        case=case_view_to_proto(listed.case), since=timestamp(listed.since)
    )
    for feedback in listed.feedback:
        to_message(feedback, reply.feedback.add())
    return reply
