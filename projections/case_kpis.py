"""What the KPIs need to know about one case, folded from that case's own stream (pure).

Kept inside the case view, so it depends on nothing but the case's events, which share one stream
and hence one order everywhere: a live Kafka worker and a replay from event 0 fold the same
values. Durations use the instants events occurred at (`occurred_at`), never a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from crm.vocabulary import ActorKind, Direction
from services.case.escalation import CaseEscalationChanged
from services.case.events import (
    CaseClosed,
    CaseEvent,
    CasePendingOnCustomer,
    CaseReopened,
    CaseResolved,
    CaseResumed,
    ContactRecorded,
)
from services.case.sla_facts import SlaBreached, SlaFulfilled, SlaTarget

SLA_MET = "met"
SLA_MISSED = "missed"
SLA_TARGETS = frozenset(SlaTarget)
HUMAN_HANDLERS = frozenset({ActorKind.AGENT, ActorKind.SUPERVISOR})


@dataclass(frozen=True)
class Span:
    """A stretch of time the case was resolved or closed; `end` is when it was reopened."""

    start: datetime
    end: datetime | None = None


@dataclass(frozen=True)
class CaseKpis:
    """Per-case measures behind FCR, resolution time, SLA attainment, backlog and escalation."""

    inbound_contacts: int = 0
    outbound_contacts: int = 0  # any outbound contact on the case counts as a callback
    # Inbound contacts an agent or supervisor handled: what first contact resolution counts (a
    # bot session, handed over or not, is not a contact with a person of its own).
    human_inbound_contacts: int = 0
    pending_since: datetime | None = None
    pending_seconds: float = 0.0  # pending on the customer, all pauses so far
    first_resolved_at: datetime | None = None
    resolution_seconds: float | None = (
        None  # last resolution - opened - pending; None unless resolved
    )
    resolution_team: str = ""  # the team when the case was (last) resolved
    sla_met: tuple[SlaTarget, ...] = ()
    sla_missed: tuple[SlaTarget, ...] = ()
    sla_decided_at: datetime | None = None  # when the SLA outcome below last changed
    ever_escalated: bool = False
    inactive: tuple[Span, ...] = ()  # resolved or closed stretches, oldest first

    @property
    def callback(self) -> bool:
        return self.outbound_contacts > 0

    @property
    def sla_outcome(self) -> str:
        """SLA_MISSED once a target was breached or fulfilled late, SLA_MET once both were met
        in time, "" while undecided (or when no SLA applies)."""
        if self.sla_missed:
            return SLA_MISSED
        if set(self.sla_met) >= SLA_TARGETS:
            return SLA_MET
        return ""


def evolve_case_kpis(
    kpis: CaseKpis, event: CaseEvent, at: datetime, opened_at: datetime, team: str
) -> CaseKpis:
    """Fold one case event (occurred `at`); `team` is the case's team before the event."""
    match event:
        case ContactRecorded():
            if event.direction is Direction.INBOUND:
                human = int(event.handler_kind in HUMAN_HANDLERS)
                return replace(
                    kpis,
                    inbound_contacts=kpis.inbound_contacts + 1,
                    human_inbound_contacts=kpis.human_inbound_contacts + human,
                )
            return replace(kpis, outbound_contacts=kpis.outbound_contacts + 1)
        case CasePendingOnCustomer():
            return replace(kpis, pending_since=kpis.pending_since or at)
        case CaseResumed():
            return _end_pending(kpis, at)
        case CaseResolved():
            ended = _end_pending(kpis, at)
            elapsed = (at - opened_at).total_seconds() - ended.pending_seconds
            return replace(
                ended,
                first_resolved_at=kpis.first_resolved_at or at,
                resolution_seconds=max(elapsed, 0.0),
                resolution_team=team,
                inactive=_start_inactive(kpis.inactive, at),
            )
        case CaseReopened():
            inactive = kpis.inactive
            if inactive and inactive[-1].end is None:
                inactive = (*inactive[:-1], replace(inactive[-1], end=at))
            return replace(kpis, resolution_seconds=None, resolution_team="", inactive=inactive)
        case CaseClosed():
            ended = _end_pending(kpis, at)
            return replace(ended, inactive=_start_inactive(kpis.inactive, at))
        case CaseEscalationChanged():
            return replace(kpis, ever_escalated=kpis.ever_escalated or event.to_level > 0)
        case SlaBreached():
            return _sla(kpis, at, missed=event.target)
        case SlaFulfilled():
            if event.met:
                return _sla(kpis, at, met=event.target)
            return _sla(kpis, at, missed=event.target)
    return kpis


def _end_pending(kpis: CaseKpis, at: datetime) -> CaseKpis:
    if kpis.pending_since is None:
        return kpis
    paused = max((at - kpis.pending_since).total_seconds(), 0.0)
    return replace(kpis, pending_since=None, pending_seconds=kpis.pending_seconds + paused)


def _start_inactive(inactive: tuple[Span, ...], at: datetime) -> tuple[Span, ...]:
    """A new inactive stretch, unless one is running (closing a resolved case continues it)."""
    if inactive and inactive[-1].end is None:
        return inactive
    return (*inactive, Span(at))


def _sla(
    kpis: CaseKpis, at: datetime, met: SlaTarget | None = None, missed: SlaTarget | None = None
) -> CaseKpis:
    """Record a target's fate; a miss is final (a breach stays a breach even if fulfilled later)."""
    before = kpis.sla_outcome
    changed = replace(
        kpis,
        sla_met=_with(kpis.sla_met, met),
        sla_missed=_with(kpis.sla_missed, missed),
    )
    if changed.sla_outcome != before:
        changed = replace(changed, sla_decided_at=at)
    return changed


def _with(targets: tuple[SlaTarget, ...], target: SlaTarget | None) -> tuple[SlaTarget, ...]:
    if target is None or target in targets:
        return targets
    return (*targets, target)
