"""The SLA clock of a case as facts on its stream: applied, paused, resumed, at risk, breached,
fulfilled (pure).

Tools that keep only due-by columns cannot explain a breach afterwards; these facts can. The
supervision process computes due instants from the policy and the business calendar and records
them through these commands; the case only checks that each fact makes sense in its state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import ClassVar

from crm.errors import InvariantViolated
from crm.validation import require_id


class SlaTarget(Enum):
    FIRST_RESPONSE = "first_response"
    RESOLUTION = "resolution"


@dataclass(frozen=True)
class SlaDue:
    """When one target is due and when it is at risk (its share of business time used)."""

    target: SlaTarget
    at_risk_at: datetime
    due_at: datetime


@dataclass(frozen=True)
class SlaApplied:
    TYPE: ClassVar[str] = "crm.case.SlaApplied.v1"
    case_id: str
    policy_version: str
    vip: bool
    dues: tuple[SlaDue, ...]
    trigger: str  # what (re)applied the clock: opened, priority_changed, tier_changed, reopened


@dataclass(frozen=True)
class SlaPaused:
    TYPE: ClassVar[str] = "crm.case.SlaPaused.v1"
    case_id: str


@dataclass(frozen=True)
class SlaResumed:
    TYPE: ClassVar[str] = "crm.case.SlaResumed.v1"
    case_id: str
    dues: tuple[SlaDue, ...]


@dataclass(frozen=True)
class SlaAtRisk:
    TYPE: ClassVar[str] = "crm.case.SlaAtRisk.v1"
    case_id: str
    target: SlaTarget
    due_at: datetime


@dataclass(frozen=True)
class SlaBreached:
    TYPE: ClassVar[str] = "crm.case.SlaBreached.v1"
    case_id: str
    target: SlaTarget
    due_at: datetime


@dataclass(frozen=True)
class SlaFulfilled:
    TYPE: ClassVar[str] = "crm.case.SlaFulfilled.v1"
    case_id: str
    target: SlaTarget
    met: bool


SlaEvent = SlaApplied | SlaPaused | SlaResumed | SlaAtRisk | SlaBreached | SlaFulfilled
SLA_EVENT_TYPES: tuple[type[SlaEvent], ...] = (
    SlaApplied,
    SlaPaused,
    SlaResumed,
    SlaAtRisk,
    SlaBreached,
    SlaFulfilled,
)


@dataclass(frozen=True)
class RecordSlaFact:
    """The supervision process records one SLA fact it decided on."""

    case_id: str
    fact: SlaEvent


@dataclass(frozen=True)
class SlaClock:
    """What the case knows of its SLA: the open dues and whether it is paused."""

    policy_version: str = ""
    dues: tuple[SlaDue, ...] = ()
    paused: bool = False
    at_risk: frozenset[SlaTarget] = frozenset()
    breached: frozenset[SlaTarget] = frozenset()
    fulfilled: frozenset[SlaTarget] = frozenset()

    def due(self, target: SlaTarget) -> SlaDue | None:
        return next((d for d in self.dues if d.target is target), None)


def evolve_clock(clock: SlaClock, event: SlaEvent) -> SlaClock:
    match event:
        case SlaApplied():
            # A target applied again (after a reopening) starts a fresh outcome.
            applied = {due.target for due in event.dues}
            return replace(
                clock,
                policy_version=event.policy_version,
                dues=event.dues,
                paused=False,
                at_risk=frozenset(),
                breached=clock.breached - applied,
                fulfilled=clock.fulfilled - applied,
            )
        case SlaPaused():
            return replace(clock, paused=True)
        case SlaResumed():
            return replace(clock, dues=event.dues, paused=False, at_risk=frozenset())
        case SlaAtRisk():
            return replace(clock, at_risk=clock.at_risk | {event.target})
        case SlaBreached():
            return replace(clock, breached=clock.breached | {event.target})
        case SlaFulfilled():
            return replace(
                clock,
                dues=tuple(d for d in clock.dues if d.target is not event.target),
                at_risk=clock.at_risk - {event.target},
                fulfilled=clock.fulfilled | {event.target},
            )
    raise InvariantViolated(f"unknown SLA event {event!r}")


def decide_fact(command: RecordSlaFact, clock: SlaClock) -> SlaEvent:
    """Refuse facts that contradict the clock (a second breach of one target, a double pause)."""
    require_id("case_id", command.case_id)
    fact = command.fact
    if fact.case_id != command.case_id:
        raise InvariantViolated("an SLA fact must name the case it is recorded on")
    match fact:
        case SlaPaused() if clock.paused:
            raise InvariantViolated(f"the SLA clock of case {fact.case_id} is paused already")
        case SlaResumed() if not clock.paused:
            raise InvariantViolated(f"the SLA clock of case {fact.case_id} is not paused")
        case SlaAtRisk() | SlaBreached() if clock.due(fact.target) is None:
            raise InvariantViolated(f"case {fact.case_id} has no open {fact.target.value} target")
        case SlaAtRisk() if fact.target in clock.at_risk:
            raise InvariantViolated(
                f"{fact.target.value} of case {fact.case_id} is at risk already"
            )
        case SlaBreached() if fact.target in clock.breached:
            raise InvariantViolated(
                f"{fact.target.value} of case {fact.case_id} is breached already"
            )
        case SlaFulfilled() if fact.target in clock.fulfilled:
            raise InvariantViolated(
                f"{fact.target.value} of case {fact.case_id} is fulfilled already"
            )
    return fact
