"""Given/when/then tests of escalation: triggers from the case's own history, explicit requests,
SLA facts, and resolution clearing it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from crm.errors import InvalidInput, InvariantViolated
from crm.vocabulary import ActorKind, Channel, Direction, Priority
from services.case.commands import (
    CaseCommand,
    OpenCase,
    RecordContact,
    ReopenCase,
    ResolveCase,
    TransferCase,
)
from services.case.domain import Case, decide, evolve
from services.case.escalation import (
    CaseEscalationChanged,
    DeEscalateCase,
    EscalateCase,
    EscalationReason,
    RaiseEscalation,
    change,
    decide_de_escalate,
    decide_escalate,
    decide_raise,
    level_of,
    repeat_contact,
)
from services.case.events import CaseEvent, CaseOpened, Category, ContactOutcome
from services.case.sla_facts import (
    RecordSlaFact,
    SlaApplied,
    SlaAtRisk,
    SlaBreached,
    SlaDue,
    SlaFulfilled,
    SlaTarget,
)

T0 = datetime(2026, 4, 6, 9, 0, tzinfo=UTC)
CASE = "case-7"
R = EscalationReason
OPEN = OpenCase(
    CASE, "cust-7", Channel.PHONE, Category.BILLING_PAYMENT, Priority.NORMAL, "Charged twice", ""
)


def history(*commands: CaseCommand) -> tuple[Case, list[CaseEvent]]:
    """Decide and fold commands one after the other, a minute apart."""
    state: Case | None = None
    events: list[CaseEvent] = []
    for index, command in enumerate(commands):
        decided = decide(command, state)
        for event in decided:
            state = evolve(state, event, T0 + timedelta(minutes=index))
        events.extend(decided)
    assert state is not None
    return state, events


def escalations(events: list[CaseEvent]) -> list[CaseEscalationChanged]:
    return [e for e in events if isinstance(e, CaseEscalationChanged)]


def inbound(contact_id: str, days: float) -> RecordContact:
    return RecordContact(
        CASE,
        contact_id,
        Channel.PHONE,
        Direction.INBOUND,
        ActorKind.AGENT,
        "agent-1",
        ContactOutcome.ANSWERED,
        T0 + timedelta(days=days),
    )


def test_level_is_the_strongest_reason_and_two_warnings_make_an_escalation() -> None:
    assert level_of([]) == 0
    assert level_of([R.BOUNCED]) == 1
    assert level_of([R.BOUNCED, R.REPEAT_CONTACT]) == 2
    assert level_of([R.SLA_BREACHED]) == 2
    assert level_of([R.SLA_AT_RISK, R.CRITICAL_DEPARTMENT]) == 3


def test_a_case_starts_at_level_zero() -> None:
    state, events = history(OPEN)
    assert state.escalation == () and state.escalation_level == 0
    assert escalations(events) == []


def test_second_transfer_marks_the_case_bounced() -> None:
    state, events = history(
        OPEN,
        TransferCase(CASE, "billing", "invoice question"),
        TransferCase(CASE, "technical", "payment gateway"),
    )
    (change,) = escalations(events)
    assert (change.from_level, change.to_level, change.added) == (0, 1, (R.BOUNCED,))
    assert change.note == "triggered by CaseTransferred"
    assert state.escalation == (R.BOUNCED,)


def test_transfer_to_development_is_critical() -> None:
    state, _ = history(OPEN, TransferCase(CASE, "development", "reproducible bug"))
    assert state.escalation == (R.CRITICAL_DEPARTMENT,)
    assert state.escalation_level == 3


def test_second_reopening_escalates() -> None:
    resolve = ResolveCase(CASE, "refunded")
    reopen = ReopenCase(CASE, "refund missing")
    state, events = history(OPEN, resolve, reopen, resolve, reopen)
    assert escalations(events)[-1].added == (R.REOPENED,)
    assert state.escalation_level == 2


def test_third_inbound_contact_within_seven_days_is_a_repeat_contact() -> None:
    state, _ = history(OPEN, inbound("c1", 0), inbound("c2", 3), inbound("c3", 6.9))
    assert state.escalation == (R.REPEAT_CONTACT,)


def test_three_inbound_contacts_spread_over_more_than_seven_days_are_not() -> None:
    state, _ = history(OPEN, inbound("c1", 0), inbound("c2", 4), inbound("c3", 8))
    assert state.escalation == ()


def test_vip_complaint_is_escalated_when_opened() -> None:
    complaint = replace(OPEN, category=Category.COMPLAINT, vip=True)
    state, events = history(complaint)
    assert isinstance(events[0], CaseOpened)
    assert state.escalation == (R.VIP_COMPLAINT,)
    assert history(replace(OPEN, vip=True))[0].escalation == ()
    assert history(replace(OPEN, category=Category.COMPLAINT))[0].escalation == ()


def test_explicit_escalation_and_de_escalation() -> None:
    state, events = history(OPEN, EscalateCase(CASE, 3, "customer asked for a manager"))
    assert state.escalation == (R.REQUESTED_CRITICAL,)
    assert escalations(events)[0].note == "customer asked for a manager"
    state, _ = history(
        OPEN,
        EscalateCase(CASE, 1, "keep an eye on it"),
        TransferCase(CASE, "billing", "x"),
        TransferCase(CASE, "support", "y"),
        DeEscalateCase(CASE, "handled by the supervisor"),
    )
    assert state.escalation == ()


@pytest.mark.parametrize("level", [0, 4])
def test_explicit_escalation_level_must_be_one_to_three(level: int) -> None:
    state, _ = history(OPEN)
    with pytest.raises(InvalidInput) as refused:
        decide(EscalateCase(CASE, level, "why"), state)
    assert refused.value.field == "level"


def test_de_escalating_a_normal_case_is_refused() -> None:
    state, _ = history(OPEN)
    with pytest.raises(InvariantViolated, match="not escalated"):
        decide(DeEscalateCase(CASE, "nothing to do"), state)


def test_resolution_clears_every_reason() -> None:
    state, events = history(
        OPEN,
        EscalateCase(CASE, 2, "angry customer"),
        TransferCase(CASE, "development", "bug"),
        ResolveCase(CASE, "fixed"),
    )
    last = escalations(events)[-1]
    assert (last.from_level, last.to_level, last.reasons) == (3, 0, ())
    assert state.escalation == ()


def test_negative_feedback_raised_from_outside_adds_a_reason_once() -> None:
    state, _ = history(OPEN, RaiseEscalation(CASE, R.NEGATIVE_FEEDBACK, "CSAT 1"))
    assert state.escalation_level == 2
    with pytest.raises(InvariantViolated, match="already"):
        decide(RaiseEscalation(CASE, R.NEGATIVE_FEEDBACK, "CSAT 2"), state)


def test_raising_on_a_resolved_case_is_refused() -> None:
    state, _ = history(OPEN, ResolveCase(CASE, "fixed"))
    with pytest.raises(InvariantViolated):
        decide(RaiseEscalation(CASE, R.NEGATIVE_FEEDBACK, "late survey"), state)


def applied() -> RecordSlaFact:
    dues = (
        SlaDue(SlaTarget.FIRST_RESPONSE, T0 + timedelta(hours=3), T0 + timedelta(hours=4)),
        SlaDue(SlaTarget.RESOLUTION, T0 + timedelta(hours=19), T0 + timedelta(hours=24)),
    )
    return RecordSlaFact(CASE, SlaApplied(CASE, "default-1", False, dues, "opened"))


def test_sla_at_risk_and_breach_escalate_and_fulfilment_clears_the_risk() -> None:
    first = SlaTarget.FIRST_RESPONSE
    due = T0 + timedelta(hours=4)
    state, _ = history(OPEN, applied(), RecordSlaFact(CASE, SlaAtRisk(CASE, first, due)))
    assert state.escalation == (R.SLA_AT_RISK,)
    state, _ = history(
        OPEN,
        applied(),
        RecordSlaFact(CASE, SlaAtRisk(CASE, first, due)),
        RecordSlaFact(CASE, SlaFulfilled(CASE, first, True)),
    )
    assert state.escalation == ()
    state, _ = history(
        OPEN,
        applied(),
        RecordSlaFact(CASE, SlaAtRisk(CASE, first, due)),
        RecordSlaFact(CASE, SlaBreached(CASE, first, due)),
        RecordSlaFact(CASE, SlaFulfilled(CASE, first, False)),
    )
    assert state.escalation == (R.SLA_BREACHED,), "a breach stays until the case is resolved"


def test_the_same_breach_cannot_be_recorded_twice() -> None:
    breach = RecordSlaFact(CASE, SlaBreached(CASE, SlaTarget.RESOLUTION, T0))
    state, _ = history(OPEN, applied(), breach)
    with pytest.raises(InvariantViolated, match="breached already"):
        decide(breach, state)


def test_no_breach_without_an_open_target() -> None:
    state, _ = history(OPEN)
    with pytest.raises(InvariantViolated, match="no open"):
        decide(RecordSlaFact(CASE, SlaBreached(CASE, SlaTarget.RESOLUTION, T0)), state)


def outbound(contact_id: str, days: float) -> RecordContact:
    return replace(inbound(contact_id, days), direction=Direction.OUTBOUND)


def test_an_outbound_contact_is_no_repeat_contact() -> None:
    state, _ = history(OPEN, inbound("c1", 0), inbound("c2", 1), outbound("c3", 2))
    assert state.escalation == ()


def test_contacts_on_a_resolved_case_are_no_repeat_contact() -> None:
    # Post-resolution contacts (a thank-you, a survey call) do not escalate a case that is done.
    state, _ = history(
        OPEN,
        inbound("c1", 0),
        inbound("c2", 1),
        ResolveCase(CASE, "fixed"),
        inbound("c3", 2),
    )
    assert state.escalation == ()


def test_fulfilling_one_target_keeps_the_risk_of_the_other() -> None:
    first, resolution = SlaTarget.FIRST_RESPONSE, SlaTarget.RESOLUTION
    state, _ = history(
        OPEN,
        applied(),
        RecordSlaFact(CASE, SlaAtRisk(CASE, first, T0 + timedelta(hours=4))),
        RecordSlaFact(CASE, SlaAtRisk(CASE, resolution, T0 + timedelta(hours=24))),
        RecordSlaFact(CASE, SlaFulfilled(CASE, first, True)),
    )
    assert state.escalation == (R.SLA_AT_RISK,)


# ---------------------------------------------------------------- the decisions, one by one


def test_change_adds_and_removes_only_what_changes_the_active_reasons() -> None:
    active = (R.SLA_AT_RISK,)

    assert change(CASE, active, remove=[R.BOUNCED]) == []  # not active: nothing to remove
    assert change(CASE, active, add=[R.SLA_AT_RISK]) == []  # active already
    (event,) = change(CASE, active, add=[R.BOUNCED], remove=[R.SLA_AT_RISK])
    assert event == CaseEscalationChanged(
        CASE, 1, 1, (R.BOUNCED,), (R.SLA_AT_RISK,), (R.BOUNCED,), ""
    )


def test_each_decision_names_the_case_and_carries_the_note() -> None:
    (escalated,) = decide_escalate(EscalateCase(CASE, 2, "customer called the CEO"), ())
    (raised,) = decide_raise(RaiseEscalation(CASE, R.SLA_BREACHED, "timer"), ())
    (cleared,) = decide_de_escalate(DeEscalateCase(CASE, "handled"), (R.SLA_BREACHED,))

    assert (escalated.case_id, escalated.note, escalated.to_level) == (
        CASE,
        "customer called the CEO",
        2,
    )
    assert (raised.case_id, raised.note, raised.added) == (CASE, "timer", (R.SLA_BREACHED,))
    assert (cleared.case_id, cleared.note, cleared.reasons) == (CASE, "handled", ())


@pytest.mark.parametrize(
    ("decision", "field"),
    [
        (lambda: decide_escalate(EscalateCase(CASE, 1, "x" * 501), ()), "note"),
        (lambda: decide_de_escalate(DeEscalateCase(CASE, "x" * 501), (R.BOUNCED,)), "note"),
        (lambda: decide_raise(RaiseEscalation("no spaces allowed", R.BOUNCED), ()), "case_id"),
    ],
)
def test_a_malformed_field_is_named(decision: Callable[[], object], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        decision()
    assert refused.value.field == field


def test_asking_twice_for_the_same_level_is_refused_with_the_reason() -> None:
    with pytest.raises(
        InvariantViolated, match=f"case {CASE} is already escalated at that request"
    ):
        decide_escalate(EscalateCase(CASE, 1, "again"), (R.REQUESTED_WATCH,))


@pytest.mark.parametrize(("days", "repeat"), [(7, True), (7.0001, False)])
def test_three_inbound_contacts_within_seven_days_inclusive_are_a_repeat(
    days: float, repeat: bool
) -> None:
    starts = (T0, T0 + timedelta(days=1), T0 + timedelta(days=days))

    assert repeat_contact(starts) is repeat
