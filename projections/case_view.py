"""The case view: where a case stands, folded from its events for lists, dashboards and KPIs (pure).

Unlike the aggregate's state it holds no personal data (no subject, description or notes), so it can
be read without the customer's key; it also records when and at which global position it last
changed, so redelivered events are recognised and ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from crm.envelope import RecordedEvent
from crm.errors import InvariantViolated
from crm.vocabulary import Channel, Priority
from projections.case_kpis import CaseKpis, evolve_case_kpis
from projections.catalogue import Batch
from services.case.compensation import COMPENSATION_EVENT_TYPES
from services.case.domain import is_response
from services.case.escalation import CaseEscalationChanged, EscalationReason
from services.case.events import (
    EVENT_TYPES as CASE_EVENT_TYPES,
)
from services.case.events import (
    CaseAssigned,
    CaseClosed,
    CaseEvent,
    CaseNoteAdded,
    CaseOpened,
    CasePendingOnCustomer,
    CasePriorityChanged,
    CaseReopened,
    CaseResolved,
    CaseResumed,
    CaseStatus,
    CaseTransferred,
    Category,
    ContactHandedOver,
    ContactRecorded,
)
from services.case.sla_facts import (
    SlaApplied,
    SlaAtRisk,
    SlaBreached,
    SlaDue,
    SlaFulfilled,
    SlaPaused,
    SlaResumed,
)


@dataclass(frozen=True)
class ActiveReason:
    """Why the case is escalated, and since when that reason holds."""

    reason: EscalationReason
    since: datetime


@dataclass(frozen=True)
class CaseView:
    """A case as agents and supervisors list it; `channel` is the channel it was opened on.

    `kpis` carries the per-case measures the KPI report reads (see projections/case_kpis.py).
    """

    case_id: str
    customer_id: str
    status: CaseStatus
    priority: Priority
    category: Category
    channel: Channel
    assignee: str
    team: str
    department: str
    contact_count: int
    transfer_count: int
    reopen_count: int
    opened_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    last_event_at: datetime
    last_position: int
    escalation_level: int = 0
    escalation_reasons: tuple[ActiveReason, ...] = ()
    escalated_since: datetime | None = None
    sla_dues: tuple[SlaDue, ...] = ()
    sla_paused: bool = False
    kpis: CaseKpis = field(default_factory=CaseKpis)
    settled_position: int = 0
    """The global position of the last resolution (or of a close without one), 0 before: feedback
    after it came once the case was settled (see projections/follow_ups.py)."""

    @property
    def next_due_at(self) -> datetime | None:
        """The earliest open SLA due instant, None while paused or with no open target."""
        if self.sla_paused or not self.sla_dues:
            return None
        return min(due.due_at for due in self.sla_dues)


def apply_case_event(view: CaseView | None, event: CaseEvent, recorded: RecordedEvent) -> CaseView:
    """Fold one case event into the view; an event at or before `last_position` changes nothing."""
    at = recorded.metadata.occurred_at
    if isinstance(event, CaseOpened):
        if view is not None:
            return view  # the case's first event, delivered again
        return CaseView(
            case_id=event.case_id,
            customer_id=event.customer_id,
            status=CaseStatus.OPEN,
            priority=event.priority,
            category=event.category,
            channel=event.channel,
            assignee="",
            team="",
            department=event.department,
            contact_count=0,
            transfer_count=0,
            reopen_count=0,
            opened_at=at,
            first_response_at=None,
            resolved_at=None,
            closed_at=None,
            last_event_at=at,
            last_position=recorded.global_position,
        )
    if view is None:
        raise InvariantViolated(f"{event.TYPE} of case {event.case_id} precedes its CaseOpened")
    if recorded.global_position <= view.last_position:
        return view
    # One replace per event: a CaseView has some thirty fields, and building one is the larger
    # part of a rebuild's time in this fold.
    changes = _changes(view, event, at, recorded.global_position)
    kpis = evolve_case_kpis(view.kpis, event, at, view.opened_at, view.team)
    if kpis != view.kpis:
        changes["kpis"] = kpis
    return replace(view, last_event_at=at, last_position=recorded.global_position, **changes)


def _changes(view: CaseView, event: CaseEvent, at: datetime, position: int) -> dict[str, Any]:
    """The fields the event changes, besides when the case last moved."""
    match event:
        case ContactRecorded():
            first = view.first_response_at
            if first is None and is_response(event):
                first = event.started_at
            return {"contact_count": view.contact_count + 1, "first_response_at": first}
        case ContactHandedOver():
            # As the aggregate does: the human who took over, and their team when named.
            return {
                "assignee": event.to_agent_id or view.assignee,
                "team": event.to_team or view.team,
            }
        case CaseAssigned():
            return {"assignee": event.agent_id, "team": event.team}
        case CaseTransferred():
            return {
                "department": event.to_department,
                "assignee": "",
                "transfer_count": view.transfer_count + 1,
            }
        case CasePriorityChanged():
            return {"priority": event.to_priority}
        case CaseNoteAdded():
            return {}
        case CasePendingOnCustomer():
            return {"status": CaseStatus.PENDING_CUSTOMER}
        case CaseResumed():
            return {"status": CaseStatus.OPEN}
        case CaseResolved():
            return {"status": CaseStatus.RESOLVED, "resolved_at": at, "settled_position": position}
        case CaseReopened():
            return {
                "status": CaseStatus.OPEN,
                "resolved_at": None,
                "reopen_count": view.reopen_count + 1,
            }
        case CaseClosed():
            settled = view.settled_position if view.status is CaseStatus.RESOLVED else position
            return {"status": CaseStatus.CLOSED, "closed_at": at, "settled_position": settled}
        case CaseEscalationChanged():
            started = {active.reason: active.since for active in view.escalation_reasons}
            reasons = tuple(ActiveReason(r, started.get(r, at)) for r in event.reasons)
            return {
                "escalation_level": event.to_level,
                "escalation_reasons": reasons,
                "escalated_since": escalated_since(view.escalated_since, event, at),
            }
        case SlaApplied() | SlaResumed():
            return {"sla_dues": event.dues, "sla_paused": False}
        case SlaPaused():
            return {"sla_paused": True}
        case SlaFulfilled():
            return {"sla_dues": tuple(d for d in view.sla_dues if d.target is not event.target)}
        case SlaAtRisk() | SlaBreached():
            return {}
        case _ if isinstance(event, COMPENSATION_EVENT_TYPES):
            return {}
    raise InvariantViolated(f"unknown case event {event!r}")


def escalated_since(
    previous: datetime | None, event: CaseEscalationChanged, at: datetime
) -> datetime | None:
    """When the case's current escalation began: kept while it stays escalated, None at level 0."""
    if event.to_level == 0:
        return None
    return previous if event.from_level > 0 else at


def case_view_changes(news: Batch, load: Callable[[str], CaseView | None]) -> dict[str, CaseView]:
    """The case views projection's apply: every case the batch touches, as it now stands.

    `load` returns a case's stored view; views already changed in this batch are folded further.
    """
    views: dict[str, CaseView] = {}
    for recorded, event in news:
        if isinstance(event, CASE_EVENT_TYPES):
            view = views.get(event.case_id) or load(event.case_id)
            views[event.case_id] = apply_case_event(view, event, recorded)
    return views
