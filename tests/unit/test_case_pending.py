"""Given/when/then tests of a case pending on the customer: the work that goes on while it waits.

Pending on the customer pauses the SLA clock, not the case: agents still assign, transfer and
escalate it, and the supervision process still records SLA facts on it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm.errors import InvariantViolated
from crm.vocabulary import Channel, Priority
from services.case.commands import (
    AssignCase,
    CaseCommand,
    OpenCase,
    ResolveCase,
    SetPendingOnCustomer,
    TransferCase,
)
from services.case.domain import Case, decide, evolve
from services.case.escalation import (
    CaseEscalationChanged,
    EscalateCase,
    EscalationReason,
    RaiseEscalation,
)
from services.case.events import CaseAssigned, CaseEvent, CaseStatus, CaseTransferred, Category
from services.case.sla_facts import (
    RecordSlaFact,
    SlaApplied,
    SlaAtRisk,
    SlaBreached,
    SlaDue,
    SlaTarget,
)

T0 = datetime(2026, 5, 11, 9, 0, tzinfo=UTC)
CASE = "case-9"
OPEN = OpenCase(
    CASE, "cust-9", Channel.EMAIL, Category.SHIPPING_FEES, Priority.HIGH, "Parcel lost", ""
)
DUE = T0 + timedelta(hours=8)
APPLIED = RecordSlaFact(
    CASE,
    SlaApplied(
        CASE,
        "default-1",
        False,
        (
            SlaDue(SlaTarget.FIRST_RESPONSE, T0 + timedelta(minutes=48), T0 + timedelta(hours=1)),
            SlaDue(SlaTarget.RESOLUTION, T0 + timedelta(hours=6, minutes=24), DUE),
        ),
        "opened",
    ),
)
PEND = SetPendingOnCustomer(CASE, "waiting for the tracking number")


def history(*commands: CaseCommand) -> Case:
    """Decide and fold commands one after the other, a minute apart."""
    state: Case | None = None
    for index, command in enumerate(commands):
        for event in decide(command, state):
            state = evolve(state, event, T0 + timedelta(minutes=index))
    assert state is not None
    return state


def pending() -> Case:
    """A case with its SLA clock applied, now waiting on the customer."""
    state = history(OPEN, APPLIED, PEND)
    assert state.status is CaseStatus.PENDING_CUSTOMER
    return state


def escalations(events: list[CaseEvent]) -> list[CaseEscalationChanged]:
    return [e for e in events if isinstance(e, CaseEscalationChanged)]


def test_a_pending_case_can_be_assigned() -> None:
    events = decide(AssignCase(CASE, "agent-4", "logistics"), pending())

    assert events == [CaseAssigned(CASE, "agent-4", "logistics", "", "")]


def test_a_pending_case_can_be_transferred() -> None:
    events = decide(TransferCase(CASE, "logistics", "carrier claim"), pending())

    assert events == [CaseTransferred(CASE, "support", "logistics", "carrier claim")]


def test_a_pending_case_can_be_escalated_on_request() -> None:
    events = decide(EscalateCase(CASE, 2, "customer called twice"), pending())

    (changed,) = escalations(events)
    assert (changed.to_level, changed.note) == (2, "customer called twice")


def test_a_pending_case_can_be_raised_by_a_signal() -> None:
    reason = EscalationReason.NEGATIVE_FEEDBACK
    events = decide(RaiseEscalation(CASE, reason, "survey"), pending())

    (changed,) = escalations(events)
    assert changed.added == (reason,)


@pytest.mark.parametrize(
    "fact",
    [SlaAtRisk(CASE, SlaTarget.RESOLUTION, DUE), SlaBreached(CASE, SlaTarget.RESOLUTION, DUE)],
)
def test_an_sla_fact_is_recorded_on_a_pending_case(fact: SlaAtRisk | SlaBreached) -> None:
    # The timer may fire in the instant the case is set pending, before the pause is recorded.
    events = decide(RecordSlaFact(CASE, fact), pending())

    assert events[0] == fact


@pytest.mark.parametrize(
    "fact",
    [SlaAtRisk(CASE, SlaTarget.RESOLUTION, DUE), SlaBreached(CASE, SlaTarget.RESOLUTION, DUE)],
)
def test_no_sla_risk_or_breach_on_a_resolved_case(fact: SlaAtRisk | SlaBreached) -> None:
    state = history(OPEN, APPLIED, ResolveCase(CASE, "found"))

    with pytest.raises(InvariantViolated, match="cannot put at risk case case-9: it is resolved"):
        decide(RecordSlaFact(CASE, fact), state)


@pytest.mark.parametrize(
    ("command", "action"),
    [
        (AssignCase(CASE, "agent-4", "logistics"), "assign"),
        (TransferCase(CASE, "logistics", "claim"), "transfer"),
        (EscalateCase(CASE, 2, "again"), "escalate"),
        (RaiseEscalation(CASE, EscalationReason.NEGATIVE_FEEDBACK, ""), "escalate"),
    ],
)
def test_a_resolved_case_refuses_work_naming_the_action_and_the_states(
    command: CaseCommand, action: str
) -> None:
    state = history(OPEN, ResolveCase(CASE, "found"))

    with pytest.raises(InvariantViolated) as refused:
        decide(command, state)
    assert str(refused.value) == (
        f"cannot {action} case {CASE}: it is resolved, must be open or pending_customer"
    )
