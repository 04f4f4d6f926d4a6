"""Given/when/then tests of the case aggregate's rules (decide) and fold (evolve)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm.errors import AlreadyExists, InvalidInput, InvariantViolated
from crm.validation import MAX_ID, MAX_SECONDS
from crm.vocabulary import ActorKind, Channel, Direction, Priority
from services.case.commands import (
    AddNote,
    AssignCase,
    CaseCommand,
    ChangePriority,
    CloseCase,
    OpenCase,
    RecordContact,
    ReopenCase,
    ResolveCase,
    ResumeCase,
    SetPendingOnCustomer,
    TransferCase,
)
from services.case.domain import Case, decide, evolve
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
    ContactOutcome,
    ContactRecorded,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CASE = "case-1"
CUSTOMER = "cust-1"

OPEN_CASE = OpenCase(
    case_id=CASE,
    customer_id=CUSTOMER,
    channel=Channel.PHONE,
    category=Category.BILLING_PAYMENT,
    priority=Priority.NORMAL,
    subject="Charged twice",
    description="The May invoice was debited twice.",
)
OPENED = CaseOpened(
    case_id=CASE,
    customer_id=CUSTOMER,
    channel=Channel.PHONE,
    category=Category.BILLING_PAYMENT,
    priority=Priority.NORMAL,
    subject="Charged twice",
    description="The May invoice was debited twice.",
    department="support",
)
CONTACT = RecordContact(
    case_id=CASE,
    contact_id="contact-1",
    channel=Channel.PHONE,
    direction=Direction.INBOUND,
    handler_kind=ActorKind.AGENT,
    handler_id="agent-1",
    outcome=ContactOutcome.ANSWERED,
    started_at=T0 + timedelta(minutes=5),
    talk_seconds=120,
    hold_seconds=30,
    after_work_seconds=60,
)
PENDING = CasePendingOnCustomer(CASE, "waiting for the bank statement")
RESOLVED = CaseResolved(CASE, "refund_issued", "")
CLOSED = CaseClosed(CASE, "")


def at(index: int) -> datetime:
    """The fixed instant of the index-th event of a history."""
    return T0 + timedelta(minutes=index)


def given(*events: CaseEvent) -> Case:
    """The case after a history, each event one minute after the previous one."""
    state: Case | None = None
    for index, event in enumerate(events):
        state = evolve(state, event, at(index))
    assert state is not None
    return state


def open_case(**changes: Any) -> OpenCase:
    """A valid OpenCase with some fields changed (field names may come from parameters)."""
    return replace(OPEN_CASE, **changes)


def contact(**changes: Any) -> RecordContact:
    """A valid agent-answered inbound contact with some fields changed."""
    return replace(CONTACT, **changes)


def recorded(**changes: Any) -> ContactRecorded:
    """The event of a contact, built by deciding it on an open case."""
    first = decide(contact(**changes), given(OPENED))[0]
    assert isinstance(first, ContactRecorded)
    return first


# ---------------------------------------------------------------- opening


def test_open_case_records_the_case_in_the_default_department() -> None:
    assert decide(OPEN_CASE, None) == [OPENED]


def test_opened_case_starts_open_with_nothing_counted() -> None:
    state = given(OPENED)

    assert state.status is CaseStatus.OPEN
    assert state.opened_at == at(0)
    assert (state.case_id, state.customer_id, state.department) == (CASE, CUSTOMER, "support")
    assert (state.contact_count, state.transfer_count, state.reopen_count, state.note_count) == (
        0,
        0,
        0,
        0,
    )
    assert state.first_response_at is None
    assert state.resolved_at is None
    assert state.closed_at is None
    assert (state.assignee, state.team) == ("", "")


def test_open_case_in_a_named_department() -> None:
    events = decide(replace(OPEN_CASE, department="billing"), None)

    assert events == [replace(OPENED, department="billing")]


def test_opening_a_case_twice_is_refused() -> None:
    with pytest.raises(AlreadyExists, match="exists already"):
        decide(OPEN_CASE, given(OPENED))


def test_a_command_on_a_case_never_opened_is_refused() -> None:
    with pytest.raises(InvariantViolated, match="has not been opened"):
        decide(CONTACT, None)


def test_no_event_can_precede_case_opened() -> None:
    with pytest.raises(InvariantViolated, match="cannot precede CaseOpened"):
        evolve(None, RESOLVED, T0)


# ---------------------------------------------------------------- field validation

BAD_IDS = [
    pytest.param("", id="empty"),
    pytest.param("x" * (MAX_ID + 1), id="too-long"),
    pytest.param("has space", id="space"),
    pytest.param("-leading-dash", id="leading-dash"),
    pytest.param("slash/inside", id="slash"),
    pytest.param("trailing-newline\n", id="trailing-newline"),
]


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("field", ["case_id", "customer_id", "department"])
def test_open_case_refuses_a_bad_id_naming_the_field(field: str, bad: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(open_case(**{field: bad}), None)

    assert refused.value.field == field


def test_longest_id_is_accepted() -> None:
    longest = "c" * MAX_ID

    assert decide(replace(OPEN_CASE, case_id=longest), None)[0].case_id == longest


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        ("subject", "s" * 200, True),
        ("subject", "s" * 201, False),
        ("subject", "", False),
        ("subject", "   ", False),
        ("description", "d" * 10_000, True),
        ("description", "d" * 10_001, False),
        ("description", "", True),
    ],
)
def test_open_case_text_limits(field: str, value: str, accepted: bool) -> None:
    command = open_case(**{field: value})

    if accepted:
        (event,) = decide(command, None)
        assert isinstance(event, CaseOpened)
        assert getattr(event, field) == value
    else:
        with pytest.raises(InvalidInput) as refused:
            decide(command, None)
        assert refused.value.field == field


@pytest.mark.parametrize("field", ["talk_seconds", "hold_seconds", "after_work_seconds"])
@pytest.mark.parametrize("seconds", [-1, MAX_SECONDS + 1])
def test_contact_seconds_out_of_range_are_refused(field: str, seconds: int) -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(contact(**{field: seconds}), given(OPENED))

    assert refused.value.field == field


@pytest.mark.parametrize("field", ["talk_seconds", "hold_seconds", "after_work_seconds"])
@pytest.mark.parametrize("seconds", [0, MAX_SECONDS])
def test_contact_seconds_at_the_bounds_are_accepted(field: str, seconds: int) -> None:
    (event,) = decide(contact(**{field: seconds}), given(OPENED))

    assert getattr(event, field) == seconds


@pytest.mark.parametrize("bad", BAD_IDS)
@pytest.mark.parametrize("field", ["contact_id", "handler_id"])
def test_contact_refuses_a_bad_id_naming_the_field(field: str, bad: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(contact(**{field: bad}), given(OPENED))

    assert refused.value.field == field


@pytest.mark.parametrize("kind", [ActorKind.CUSTOMER, ActorKind.SYSTEM])
def test_contact_handled_by_neither_agent_nor_bot_is_refused(kind: ActorKind) -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(contact(handler_kind=kind), given(OPENED))

    assert refused.value.field == "handled_by"


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (AssignCase(CASE, "", "team-a"), "agent_id"),
        (AssignCase(CASE, "agent-1", "bad team"), "team"),
        (TransferCase(CASE, "", "needs billing"), "to_department"),
        (TransferCase(CASE, "billing", "  "), "reason"),
        (TransferCase(CASE, "billing", "r" * 501), "reason"),
        (ChangePriority(CASE, Priority.HIGH, "r" * 501), "reason"),
        (AddNote(CASE, "", "a note"), "note_id"),
        (AddNote(CASE, "note-1", ""), "text"),
        (AddNote(CASE, "note-1", "n" * 10_001), "text"),
        (SetPendingOnCustomer(CASE, ""), "reason"),
        (ResolveCase(CASE, ""), "resolution_code"),
        (ResolveCase(CASE, "bad code"), "resolution_code"),
        (ResolveCase(CASE, "fixed", "n" * 10_001), "note"),
        (CloseCase(CASE, "r" * 501), "reason"),
        (AddNote("", "note-1", "a note"), "case_id"),
    ],
)
def test_malformed_fields_are_refused_naming_the_field(command: CaseCommand, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(command, given(OPENED))

    assert refused.value.field == field


@pytest.mark.parametrize("reason", ["", "   ", "r" * 501])
def test_reopen_needs_a_reason(reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(ReopenCase(CASE, reason), given(OPENED, RESOLVED))

    assert refused.value.field == "reason"


def test_resume_reason_is_limited() -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(ResumeCase(CASE, "r" * 501), given(OPENED, PENDING))

    assert refused.value.field == "reason"


# ---------------------------------------------------------------- contacts


def test_a_contact_is_recorded_and_counted() -> None:
    events = decide(CONTACT, given(OPENED))

    assert events == [
        ContactRecorded(
            case_id=CASE,
            contact_id="contact-1",
            channel=Channel.PHONE,
            direction=Direction.INBOUND,
            handler_kind=ActorKind.AGENT,
            handler_id="agent-1",
            outcome=ContactOutcome.ANSWERED,
            started_at=T0 + timedelta(minutes=5),
            talk_seconds=120,
            hold_seconds=30,
            after_work_seconds=60,
        )
    ]
    assert given(OPENED, *events, recorded(contact_id="contact-2")).contact_count == 2


def test_no_contact_on_a_closed_case() -> None:
    with pytest.raises(InvariantViolated, match="closed"):
        decide(CONTACT, given(OPENED, RESOLVED, CLOSED))


def test_a_bot_contact_handed_to_a_human_records_the_hand_over() -> None:
    command = contact(
        channel=Channel.CHATBOT,
        handler_kind=ActorKind.BOT,
        handler_id="bot-1",
        outcome=ContactOutcome.HANDED_TO_HUMAN,
        handover_to_agent_id="agent-7",
        handover_to_team="billing-team",
    )

    events = decide(command, given(OPENED))

    assert [type(e) for e in events] == [ContactRecorded, ContactHandedOver]
    assert events[1] == ContactHandedOver(CASE, "contact-1", "bot-1", "agent-7", "billing-team")
    state = given(OPENED, *events)
    assert (state.assignee, state.team) == ("agent-7", "billing-team")
    assert state.contact_count == 1


def test_a_hand_over_to_a_team_only_keeps_the_assignee() -> None:
    state = given(
        OPENED,
        CaseAssigned(CASE, "agent-1", "team-a", "", ""),
        ContactHandedOver(CASE, "contact-1", "bot-1", "", "team-b"),
    )

    assert (state.assignee, state.team) == ("agent-1", "team-b")


def test_assigning_the_agent_and_team_a_hand_over_chose_is_refused() -> None:
    state = given(OPENED, ContactHandedOver(CASE, "contact-1", "bot-1", "agent-7", "team-b"))

    with pytest.raises(InvariantViolated, match="already assigned"):
        decide(AssignCase(CASE, "agent-7", "team-b"), state)


@pytest.mark.parametrize("kind", [ActorKind.AGENT, ActorKind.SUPERVISOR])
def test_a_hand_over_by_a_human_is_refused(kind: ActorKind) -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(
            contact(handler_kind=kind, outcome=ContactOutcome.HANDED_TO_HUMAN),
            given(OPENED),
        )

    assert refused.value.field == "outcome"


def test_a_hand_over_target_without_a_hand_over_outcome_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(contact(handover_to_agent_id="agent-7"), given(OPENED))

    assert refused.value.field == "handover"


def test_a_hand_over_to_a_malformed_agent_is_refused() -> None:
    command = contact(
        handler_kind=ActorKind.BOT,
        handler_id="bot-1",
        outcome=ContactOutcome.HANDED_TO_HUMAN,
        handover_to_agent_id="not an id",
    )

    with pytest.raises(InvalidInput) as refused:
        decide(command, given(OPENED))

    assert refused.value.field == "handover_to_agent_id"


def test_bot_resolved_needs_a_bot() -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(contact(outcome=ContactOutcome.BOT_RESOLVED), given(OPENED))
    assert refused.value.field == "outcome"

    bot = contact(
        handler_kind=ActorKind.BOT, handler_id="bot-1", outcome=ContactOutcome.BOT_RESOLVED
    )
    (event,) = decide(bot, given(OPENED))
    assert isinstance(event, ContactRecorded)
    assert event.outcome is ContactOutcome.BOT_RESOLVED


@pytest.mark.parametrize(
    "outcome", [ContactOutcome.ANSWERED, ContactOutcome.VOICEMAIL, ContactOutcome.HANDED_TO_HUMAN]
)
def test_an_inbound_contact_on_a_pending_case_resumes_it(outcome: ContactOutcome) -> None:
    kind = ActorKind.BOT if outcome is ContactOutcome.HANDED_TO_HUMAN else ActorKind.AGENT
    command = contact(outcome=outcome, handler_kind=kind)

    events = decide(command, given(OPENED, PENDING))

    assert isinstance(events[0], ContactRecorded)
    assert events[-1] == CaseResumed(CASE, "customer contacted us")
    assert given(OPENED, PENDING, *events).status is CaseStatus.OPEN


def test_an_abandoned_inbound_contact_does_not_resume_a_pending_case() -> None:
    events = decide(contact(outcome=ContactOutcome.ABANDONED), given(OPENED, PENDING))

    assert [type(e) for e in events] == [ContactRecorded]
    assert given(OPENED, PENDING, *events).status is CaseStatus.PENDING_CUSTOMER


def test_an_outbound_contact_does_not_resume_a_pending_case() -> None:
    events = decide(contact(direction=Direction.OUTBOUND), given(OPENED, PENDING))

    assert [type(e) for e in events] == [ContactRecorded]


def test_an_inbound_contact_on_an_open_case_emits_no_resume() -> None:
    assert [type(e) for e in decide(CONTACT, given(OPENED))] == [ContactRecorded]


# ---------------------------------------------------------------- first response


@pytest.mark.parametrize(
    ("kind", "direction", "outcome"),
    [
        (ActorKind.AGENT, Direction.INBOUND, ContactOutcome.ANSWERED),
        (ActorKind.SUPERVISOR, Direction.INBOUND, ContactOutcome.ANSWERED),
        (ActorKind.AGENT, Direction.OUTBOUND, ContactOutcome.ANSWERED),
        (ActorKind.AGENT, Direction.OUTBOUND, ContactOutcome.VOICEMAIL),
    ],
)
def test_first_agent_response_sets_first_response_at(
    kind: ActorKind, direction: Direction, outcome: ContactOutcome
) -> None:
    started = T0 + timedelta(minutes=42)

    state = given(
        OPENED,
        recorded(handler_kind=kind, direction=direction, outcome=outcome, started_at=started),
    )

    assert state.first_response_at == started


@pytest.mark.parametrize(
    ("kind", "direction", "outcome"),
    [
        (ActorKind.BOT, Direction.INBOUND, ContactOutcome.ANSWERED),
        (ActorKind.BOT, Direction.OUTBOUND, ContactOutcome.ANSWERED),
        (ActorKind.BOT, Direction.INBOUND, ContactOutcome.BOT_RESOLVED),
        (ActorKind.BOT, Direction.INBOUND, ContactOutcome.HANDED_TO_HUMAN),
        (ActorKind.AGENT, Direction.INBOUND, ContactOutcome.ABANDONED),
        (ActorKind.AGENT, Direction.OUTBOUND, ContactOutcome.ABANDONED),
        (ActorKind.AGENT, Direction.INBOUND, ContactOutcome.VOICEMAIL),
    ],
)
def test_contacts_that_are_no_agent_response_leave_first_response_unset(
    kind: ActorKind, direction: Direction, outcome: ContactOutcome
) -> None:
    state = given(OPENED, recorded(handler_kind=kind, direction=direction, outcome=outcome))

    assert state.contact_count == 1
    assert state.first_response_at is None


def test_only_the_first_agent_response_counts() -> None:
    first = T0 + timedelta(minutes=10)
    later = T0 + timedelta(minutes=50)

    state = given(
        OPENED,
        recorded(handler_kind=ActorKind.BOT, started_at=T0 + timedelta(minutes=1)),
        recorded(started_at=first),
        recorded(started_at=later),
    )

    assert state.first_response_at == first


# ---------------------------------------------------------------- assignment and transfer


def test_assigning_records_the_previous_assignee() -> None:
    first = decide(AssignCase(CASE, "agent-1", "team-a"), given(OPENED))
    assert first == [CaseAssigned(CASE, "agent-1", "team-a", "", "")]

    state = given(OPENED, *first)
    second = decide(AssignCase(CASE, "agent-2", "team-a"), state)
    assert second == [CaseAssigned(CASE, "agent-2", "team-a", "agent-1", "team-a")]
    after = given(OPENED, *first, *second)
    assert (after.assignee, after.team) == ("agent-2", "team-a")


def test_assigning_the_same_agent_and_team_is_refused() -> None:
    state = given(OPENED, CaseAssigned(CASE, "agent-1", "team-a", "", ""))

    with pytest.raises(InvariantViolated, match="already assigned"):
        decide(AssignCase(CASE, "agent-1", "team-a"), state)


def test_the_same_agent_in_another_team_is_a_new_assignment() -> None:
    state = given(OPENED, CaseAssigned(CASE, "agent-1", "team-a", "", ""))

    assert decide(AssignCase(CASE, "agent-1", "team-b"), state) == [
        CaseAssigned(CASE, "agent-1", "team-b", "agent-1", "team-a")
    ]


def test_assigning_a_resolved_case_is_refused() -> None:
    with pytest.raises(InvariantViolated, match="cannot assign"):
        decide(AssignCase(CASE, "agent-1", "team-a"), given(OPENED, RESOLVED))


def test_transfer_to_the_same_department_is_refused() -> None:
    with pytest.raises(InvariantViolated, match="already in department support"):
        decide(TransferCase(CASE, "support", "wrong queue"), given(OPENED))


def test_a_transfer_moves_the_case_clears_the_assignee_and_counts() -> None:
    assigned = CaseAssigned(CASE, "agent-1", "team-a", "", "")

    events = decide(TransferCase(CASE, "billing", "refund needed"), given(OPENED, assigned))

    assert events == [CaseTransferred(CASE, "support", "billing", "refund needed")]
    state = given(OPENED, assigned, *events)
    assert state.department == "billing"
    assert state.assignee == ""
    assert state.transfer_count == 1
    back = given(OPENED, assigned, *events, CaseTransferred(CASE, "billing", "support", "back"))
    assert back.transfer_count == 2
    assert back.department == "support"


def test_transferring_a_resolved_case_is_refused() -> None:
    with pytest.raises(InvariantViolated, match="cannot transfer"):
        decide(TransferCase(CASE, "billing", "late"), given(OPENED, RESOLVED))


# ---------------------------------------------------------------- priority and notes


def test_changing_to_the_same_priority_is_refused() -> None:
    with pytest.raises(InvariantViolated, match="already has priority normal"):
        decide(ChangePriority(CASE, Priority.NORMAL), given(OPENED))


def test_changing_the_priority_records_both_values() -> None:
    events = decide(ChangePriority(CASE, Priority.URGENT, "VIP"), given(OPENED))

    assert events == [CasePriorityChanged(CASE, Priority.NORMAL, Priority.URGENT, "VIP")]
    assert given(OPENED, *events).priority is Priority.URGENT


def test_notes_are_counted() -> None:
    events = decide(AddNote(CASE, "note-1", "Called the bank."), given(OPENED))

    assert events == [CaseNoteAdded(CASE, "note-1", "Called the bank.")]
    assert given(OPENED, *events, *events).note_count == 2


# ---------------------------------------------------------------- pending and resume


def test_pending_on_the_customer_from_open() -> None:
    events = decide(SetPendingOnCustomer(CASE, "waiting for a photo"), given(OPENED))

    assert events == [CasePendingOnCustomer(CASE, "waiting for a photo")]
    assert given(OPENED, *events).status is CaseStatus.PENDING_CUSTOMER


@pytest.mark.parametrize(
    "history",
    [
        pytest.param((OPENED, PENDING), id="pending"),
        pytest.param((OPENED, RESOLVED), id="resolved"),
    ],
)
def test_pending_only_from_open(history: tuple[CaseEvent, ...]) -> None:
    with pytest.raises(InvariantViolated, match="must be open"):
        decide(SetPendingOnCustomer(CASE, "again"), given(*history))


def test_resume_from_pending() -> None:
    events = decide(ResumeCase(CASE, "agent picked it up"), given(OPENED, PENDING))

    assert events == [CaseResumed(CASE, "agent picked it up")]
    assert given(OPENED, PENDING, *events).status is CaseStatus.OPEN


@pytest.mark.parametrize(
    "history",
    [pytest.param((OPENED,), id="open"), pytest.param((OPENED, RESOLVED), id="resolved")],
)
def test_resume_only_from_pending(history: tuple[CaseEvent, ...]) -> None:
    with pytest.raises(InvariantViolated, match="must be pending_customer"):
        decide(ResumeCase(CASE), given(*history))


# ---------------------------------------------------------------- resolve, reopen, close


@pytest.mark.parametrize(
    "history",
    [pytest.param((OPENED,), id="open"), pytest.param((OPENED, PENDING), id="pending")],
)
def test_resolving_records_the_code_and_the_instant(history: tuple[CaseEvent, ...]) -> None:
    events = decide(ResolveCase(CASE, "refund_issued", "refunded 20 EUR"), given(*history))

    assert events == [CaseResolved(CASE, "refund_issued", "refunded 20 EUR")]
    state = given(*history, *events)
    assert state.status is CaseStatus.RESOLVED
    assert state.resolved_at == at(len(history))
    assert state.resolution_code == "refund_issued"


def test_resolving_a_resolved_case_is_refused() -> None:
    with pytest.raises(InvariantViolated, match="cannot resolve"):
        decide(ResolveCase(CASE, "again"), given(OPENED, RESOLVED))


def test_reopening_a_resolved_case_clears_the_resolution_and_counts() -> None:
    events = decide(ReopenCase(CASE, "customer called back"), given(OPENED, RESOLVED))

    assert events == [CaseReopened(CASE, "customer called back")]
    state = given(OPENED, RESOLVED, *events)
    assert state.status is CaseStatus.OPEN
    assert state.resolved_at is None
    assert state.resolution_code == ""
    assert state.reopen_count == 1
    again = given(OPENED, RESOLVED, *events, RESOLVED, *events)
    assert again.reopen_count == 2


@pytest.mark.parametrize(
    "history",
    [pytest.param((OPENED,), id="open"), pytest.param((OPENED, PENDING), id="pending")],
)
def test_reopen_only_from_resolved(history: tuple[CaseEvent, ...]) -> None:
    with pytest.raises(InvariantViolated, match="cannot reopen"):
        decide(ReopenCase(CASE, "why not"), given(*history))


def test_a_closed_case_cannot_be_reopened() -> None:
    with pytest.raises(InvariantViolated, match="closed; open a new case"):
        decide(ReopenCase(CASE, "came back"), given(OPENED, RESOLVED, CLOSED))


def test_closing_a_resolved_case_needs_no_reason_and_keeps_the_resolution() -> None:
    events = decide(CloseCase(CASE), given(OPENED, RESOLVED))

    assert events == [CaseClosed(CASE, "")]
    state = given(OPENED, RESOLVED, *events)
    assert state.status is CaseStatus.CLOSED
    assert state.closed_at == at(2)
    assert state.resolved_at == at(1)


@pytest.mark.parametrize(
    "history",
    [pytest.param((OPENED,), id="open"), pytest.param((OPENED, PENDING), id="pending")],
)
@pytest.mark.parametrize("reason", ["", "   "])
def test_closing_an_unresolved_case_needs_a_reason(
    history: tuple[CaseEvent, ...], reason: str
) -> None:
    with pytest.raises(InvariantViolated, match="needs a reason"):
        decide(CloseCase(CASE, reason), given(*history))


def test_closing_an_unresolved_case_with_a_reason() -> None:
    events = decide(CloseCase(CASE, "customer withdrew the request"), given(OPENED))

    state = given(OPENED, *events)
    assert state.status is CaseStatus.CLOSED
    assert state.resolved_at is None


def test_notes_are_allowed_on_a_closed_case() -> None:
    events = decide(AddNote(CASE, "note-9", "Audit remark."), given(OPENED, RESOLVED, CLOSED))

    assert events == [CaseNoteAdded(CASE, "note-9", "Audit remark.")]
    state = given(OPENED, RESOLVED, CLOSED, *events)
    assert state.status is CaseStatus.CLOSED
    assert state.note_count == 1


@pytest.mark.parametrize(
    "command",
    [
        CONTACT,
        AssignCase(CASE, "agent-1", "team-a"),
        TransferCase(CASE, "billing", "late"),
        ChangePriority(CASE, Priority.HIGH),
        SetPendingOnCustomer(CASE, "waiting"),
        ResumeCase(CASE),
        ResolveCase(CASE, "fixed"),
        ReopenCase(CASE, "came back"),
        CloseCase(CASE, "again"),
    ],
    ids=lambda c: type(c).__name__,
)
def test_a_closed_case_takes_no_command_but_notes(command: CaseCommand) -> None:
    with pytest.raises(InvariantViolated, match="closed"):
        decide(command, given(OPENED, RESOLVED, CLOSED))


# ---------------------------------------------------------------- rules added after review


def test_the_same_contact_cannot_be_recorded_twice_on_a_case() -> None:
    state = given(OPENED, recorded())

    with pytest.raises(AlreadyExists, match="contact-1"):
        decide(contact(), state)
    assert decide(contact(contact_id="contact-2"), state)[0] == recorded(contact_id="contact-2")


def test_a_contact_start_without_time_zone_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(contact(started_at=datetime(2026, 3, 2, 9, 5)), given(OPENED))
    assert refused.value.field == "started_at"


@pytest.mark.parametrize("history", [(OPENED, RESOLVED), (OPENED, RESOLVED, CLOSED)])
def test_priority_of_a_resolved_or_closed_case_cannot_change(
    history: tuple[CaseEvent, ...],
) -> None:
    with pytest.raises(InvariantViolated):
        decide(ChangePriority(CASE, Priority.URGENT), given(*history))


def test_priority_of_a_pending_case_can_change() -> None:
    events = decide(ChangePriority(CASE, Priority.HIGH, "VIP"), given(OPENED, PENDING))
    assert events == [CasePriorityChanged(CASE, Priority.NORMAL, Priority.HIGH, "VIP")]
