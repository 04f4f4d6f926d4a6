"""The hand-over summary: one paragraph a new agent reads instead of the whole thread (pure).

Built only from the case's events, in order, so the same history always gives the same text.
It names ids, channels, departments, counts and states, never the personal fields (subject,
description, notes, free-text reasons), so it stays readable after a customer is forgotten.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from crm.vocabulary import Direction
from services.case import domain as case_domain
from services.case.compensation import CompensationGranted, CompensationRequested
from services.case.events import CaseEvent, CaseOpened, CaseStatus, CaseTransferred, ContactRecorded
from services.case.sla_facts import SlaBreached, SlaFulfilled, SlaTarget


def summarize(history: Sequence[tuple[CaseEvent, datetime]]) -> str:
    """The summary of a case from its events and the instants they occurred."""
    state: case_domain.Case | None = None
    departments: list[str] = []
    channels: Counter[str] = Counter()
    directions: Counter[Direction] = Counter()
    agents: list[str] = []
    granted: list[CompensationGranted] = []
    breached: list[SlaTarget] = []
    late: list[SlaTarget] = []
    for event, at in history:
        state = case_domain.evolve(state, event, at)
        match event:
            case CaseOpened():
                departments.append(event.department)
            case CaseTransferred():
                departments.append(event.to_department)
            case ContactRecorded():
                channels[event.channel.value.replace("_", " ")] += 1
                directions[event.direction] += 1
                if event.handler_id not in agents:
                    agents.append(event.handler_id)
            case CompensationGranted():
                granted.append(event)
            case SlaBreached():
                breached.append(event.target)
            case SlaFulfilled() if not event.met:
                late.append(event.target)
    if state is None:
        return ""
    return " ".join(
        part
        for part in (
            _opening(state),
            _contacts(state, channels, directions, agents),
            _route(state, departments),
            _now(state),
            _escalation(state),
            _sla(breached, late),
            _compensation(granted, state),
        )
        if part
    )


def _opening(case: case_domain.Case) -> str:
    return (
        f"Case {case.case_id} for customer {case.customer_id} was opened on"
        f" {case.channel.value.replace('_', ' ')} on {case.opened_at.date().isoformat()}:"
        f" {case.category.value.replace('_', ' ')}, priority {case.priority.value}."
    )


def _contacts(
    case: case_domain.Case,
    channels: Counter[str],
    directions: Counter[Direction],
    agents: list[str],
) -> str:
    if not case.contact_count:
        return "No contact is recorded yet."
    by_channel = ", ".join(f"{n} {channel}" for channel, n in sorted(channels.items()))
    return (
        f"{_count(case.contact_count, 'contact')} ({by_channel};"
        f" {directions[Direction.INBOUND]} inbound, {directions[Direction.OUTBOUND]} outbound),"
        f" handled by {', '.join(agents)}."
    )


def _route(case: case_domain.Case, departments: list[str]) -> str:
    if not case.transfer_count:
        return f"It stayed in {departments[0]}."
    return f"It was transferred {_count(case.transfer_count, 'time')}: {' -> '.join(departments)}."


def _now(case: case_domain.Case) -> str:
    status = case.status.value.replace("_", " ")
    owner = f", assigned to {case.assignee} in team {case.team}" if case.assignee else ""
    reopened = f" It was reopened {_count(case.reopen_count, 'time')}." if case.reopen_count else ""
    resolution = f" with code {case.resolution_code}" if case.status is CaseStatus.RESOLVED else ""
    return f"It is {status}{resolution} in {case.department}{owner}.{reopened}"


def _escalation(case: case_domain.Case) -> str:
    if not case.escalation:
        return "No escalation is open."
    reasons = ", ".join(r.value.replace("_", " ") for r in case.escalation)
    return f"Escalation level {case.escalation_level}: {reasons}."


def _sla(breached: list[SlaTarget], late: list[SlaTarget]) -> str:
    missed = sorted({t.value.replace("_", " ") for t in (*breached, *late)})
    return f"SLA missed for {' and '.join(missed)}." if missed else ""


def _compensation(granted: list[CompensationGranted], case: case_domain.Case) -> str:
    parts = [f"{g.kind.value} {g.amount_minor} {g.currency}" for g in granted]
    pending: tuple[CompensationRequested, ...] = case.compensations.pending
    text = f"Compensation granted: {', '.join(parts)}." if parts else ""
    if pending:
        text += f" {_count(len(pending), 'compensation request')} awaiting a supervisor."
    return text.strip()


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
