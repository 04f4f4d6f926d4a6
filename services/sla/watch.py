"""What the SLA planner keeps about each open case, and the commands it plans (pure).

Shared by the planner, its saved state and the timer queue: a case watch, the timers it arms,
and a planned command in the plain form a saved state holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crm.eventcodec import from_plain, to_plain
from crm.vocabulary import Priority
from services.case.escalation import EscalationReason, RaiseEscalation
from services.case.events import CaseStatus, Category
from services.case.sla_facts import SLA_EVENT_TYPES, RecordSlaFact, SlaDue, SlaTarget
from services.sla.timers import AT_RISK, BREACHED, Timer

Command = RecordSlaFact | RaiseEscalation

_FACT_TYPES = {fact_type.TYPE: fact_type for fact_type in SLA_EVENT_TYPES}


@dataclass(frozen=True)
class Planned:
    """A command for the case service, with the ids that make it idempotent and traceable.

    `occurred_at` is the instant the fact describes (the event that started or moved the clock,
    the at-risk or due instant a timer fired for), not the moment the process noticed: the
    command is dated with it, so timelines, views and KPIs place the fact where it happened
    while the envelope's recorded_at keeps when it was written.
    """

    request_id: str
    causation_id: str
    command: Command
    occurred_at: datetime


@dataclass(frozen=True)
class LateFeedback:
    """Negative feedback that arrived while its case was resolved: nothing to escalate then,
    but a reopening within the policy's window escalates for it."""

    feedback_id: str
    reason: EscalationReason
    at: datetime


@dataclass
class CaseWatch:
    """What the planner knows about one case that is not closed."""

    case_id: str
    customer_id: str
    priority: Priority
    category: Category
    status: CaseStatus
    starts: dict[SlaTarget, datetime]
    pauses: list[tuple[datetime, datetime | None]] = field(default_factory=list)
    dues: tuple[SlaDue, ...] = ()
    paused: bool = False
    at_risk: set[SlaTarget] = field(default_factory=set)
    breached: set[SlaTarget] = field(default_factory=set)
    fulfilled: set[SlaTarget] = field(default_factory=set)
    escalation: tuple[EscalationReason, ...] = ()
    late_feedback: tuple[LateFeedback, ...] = ()

    @property
    def active(self) -> bool:
        return self.status in (CaseStatus.OPEN, CaseStatus.PENDING_CUSTOMER)


def watch_timers(watch: CaseWatch) -> tuple[Timer, ...]:
    """Every timer of the case still to fire, with its instant: per due, at risk then breached."""
    if not watch.active or watch.paused:
        return ()
    timers = []
    for due in watch.dues:
        if due.target in watch.fulfilled:
            continue
        if due.target not in watch.at_risk and due.target not in watch.breached:
            timers.append(Timer(due.at_risk_at, due, AT_RISK))
        if due.target not in watch.breached:
            timers.append(Timer(due.due_at, due, BREACHED))
    return tuple(timers)


def plain_plan(planned: Planned) -> dict[str, Any]:
    command = planned.command
    fact = command.fact.TYPE if isinstance(command, RecordSlaFact) else ""
    return {
        "request_id": planned.request_id,
        "causation_id": planned.causation_id,
        "fact": fact,  # which SLA fact the command records; "" for an escalation
        "command": to_plain(command),
        "occurred_at": planned.occurred_at.isoformat(),
    }


def plan_from_plain(plain: dict[str, Any]) -> Planned:
    raw = plain["command"]
    command: Command
    if plain["fact"]:
        command = RecordSlaFact(raw["case_id"], from_plain(_FACT_TYPES[plain["fact"]], raw["fact"]))
    else:
        command = from_plain(RaiseEscalation, raw)
    occurred_at = datetime.fromisoformat(plain["occurred_at"])
    return Planned(plain["request_id"], plain["causation_id"], command, occurred_at)
