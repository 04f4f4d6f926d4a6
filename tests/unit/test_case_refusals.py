"""The case aggregate's refusals word for word, and the profile its fold keeps.

Callers show refusal texts to agents and match on the field an InvalidInput names, so both are
part of the API; these tests pin every refusal `decide` can give in its own words.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from crm.errors import DomainError, InvalidInput, InvariantViolated
from crm.validation import MAX_LONG_TEXT
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
from services.case.events import CaseEvent, Category, ContactOutcome

T0 = datetime(2026, 8, 3, 10, 0, tzinfo=UTC)
CASE = "case-3"
OPEN = OpenCase(
    CASE,
    "cust-3",
    Channel.CHAT,
    Category.TECHNICAL_TROUBLE,
    Priority.NORMAL,
    "Router drops the line",
    "Every evening at eight.",
)
CONTACT = RecordContact(
    CASE,
    "contact-1",
    Channel.CHAT,
    Direction.INBOUND,
    ActorKind.AGENT,
    "agent-1",
    ContactOutcome.ANSWERED,
    T0,
)


def history(*commands: CaseCommand) -> Case:
    """Decide and fold commands one after the other, a minute apart."""
    state: Case | None = None
    for index, command in enumerate(commands):
        for event in decide(command, state):
            state = evolve(state, event, T0 + timedelta(minutes=index))
    assert state is not None
    return state


def refusal(command: CaseCommand, *before: CaseCommand) -> str:
    state = history(*before) if before else None
    with pytest.raises(DomainError) as refused:
        decide(command, state)
    return str(refused.value)


def test_the_folded_case_keeps_its_subject_and_description() -> None:
    state = history(OPEN)

    assert (state.subject, state.description) == (
        "Router drops the line",
        "Every evening at eight.",
    )
    assert (state.channel, state.category, state.priority) == (
        Channel.CHAT,
        Category.TECHNICAL_TROUBLE,
        Priority.NORMAL,
    )


RESOLVE = ResolveCase(CASE, "fixed")
PEND = SetPendingOnCustomer(CASE, "waiting for a photo")
BOT = replace(CONTACT, handler_kind=ActorKind.BOT, handler_id="bot-1")


@pytest.mark.parametrize(
    ("command", "before", "text"),
    [
        (OPEN, (OPEN,), "case case-3 exists already"),
        (AddNote(CASE, "n-1", "x"), (), "case case-3 has not been opened"),
        (
            AssignCase(CASE, "agent-1", "team-1"),
            (OPEN, CloseCase(CASE, "duplicate")),
            "case case-3 is closed; open a new case instead",
        ),
        (
            ChangePriority(CASE, Priority.NORMAL),
            (OPEN,),
            "case case-3 already has priority normal",
        ),
        (
            ChangePriority(CASE, Priority.HIGH),
            (OPEN, RESOLVE),
            "cannot change the priority of case case-3: it is resolved,"
            " must be open or pending_customer",
        ),
        (
            PEND,
            (OPEN, PEND),
            "cannot set pending on the customer case case-3: it is pending_customer, must be open",
        ),
        (
            ResumeCase(CASE),
            (OPEN,),
            "cannot resume case case-3: it is open, must be pending_customer",
        ),
        (
            RESOLVE,
            (OPEN, RESOLVE),
            "cannot resolve case case-3: it is resolved, must be open or pending_customer",
        ),
        (
            ReopenCase(CASE, "came back"),
            (OPEN,),
            "cannot reopen case case-3: it is open, must be resolved",
        ),
        (
            CloseCase(CASE),
            (OPEN, PEND),
            "case case-3 is pending_customer; closing an unresolved case needs a reason",
        ),
        (
            AssignCase(CASE, "agent-1", "team-1"),
            (OPEN, AssignCase(CASE, "agent-1", "team-1")),
            "case case-3 is already assigned to agent-1 in team-1",
        ),
        (
            TransferCase(CASE, "support", "wrong desk"),
            (OPEN,),
            "case case-3 is already in department support",
        ),
        (CONTACT, (OPEN, CONTACT), "contact contact-1 is recorded on this case already"),
        (
            replace(CONTACT, started_at=datetime(2026, 8, 3, 10)),
            (OPEN,),
            "started_at: must carry a time zone",
        ),
        (
            replace(CONTACT, handler_kind=ActorKind.CUSTOMER),
            (OPEN,),
            "handled_by: a contact is handled by an agent, a supervisor or a bot",
        ),
        (
            replace(CONTACT, outcome=ContactOutcome.HANDED_TO_HUMAN),
            (OPEN,),
            "outcome: only a bot-handled contact can be handed to a human",
        ),
        (
            replace(BOT, handover_to_team="tier-2"),
            (OPEN,),
            "handover: a hand-over needs the outcome HANDED_TO_HUMAN",
        ),
        (
            replace(CONTACT, outcome=ContactOutcome.BOT_RESOLVED),
            (OPEN,),
            "outcome: BOT_RESOLVED needs a bot as handler",
        ),
    ],
)
def test_each_refusal_says_what_is_wrong_in_its_own_words(
    command: CaseCommand, before: tuple[CaseCommand, ...], text: str
) -> None:
    assert refusal(command, *before) == text


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (
            replace(BOT, outcome=ContactOutcome.HANDED_TO_HUMAN, handover_to_team="a b"),
            "handover_to_team",
        ),
        (
            replace(BOT, outcome=ContactOutcome.HANDED_TO_HUMAN, handover_to_agent_id="a b"),
            "handover_to_agent_id",
        ),
        (AddNote(CASE, "n 1", "text"), "note_id"),
        (AddNote(CASE, "n-1", ""), "text"),
        (ChangePriority(CASE, Priority.HIGH, "r" * 501), "reason"),
        (ResolveCase(CASE, "bad code"), "resolution_code"),
        (ResolveCase(CASE, "fixed", "n" * (MAX_LONG_TEXT + 1)), "note"),
        (TransferCase(CASE, "billing", ""), "reason"),
        (TransferCase(CASE, "bad dept", "r"), "to_department"),
        (AssignCase(CASE, "bad agent", "team-1"), "agent_id"),
        (AssignCase(CASE, "agent-1", "bad team"), "team"),
        (CloseCase(CASE, "r" * 501), "reason"),
        (SetPendingOnCustomer(CASE, ""), "reason"),
    ],
)
def test_a_malformed_field_is_named(command: CaseCommand, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(command, history(OPEN))

    assert refused.value.field == field


@dataclass(frozen=True)
class MergeCases:
    """A command the case aggregate does not know, shaped like the ones it does."""

    case_id: str


def test_a_command_it_does_not_know_is_refused_naming_its_type() -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(MergeCases(CASE), history(OPEN))  # type: ignore[arg-type]

    assert refused.value.field == "command"
    assert str(refused.value) == "command: unknown case command MergeCases"


def test_an_event_it_does_not_know_is_refused_by_the_fold() -> None:
    stray = MergeCases(CASE)

    with pytest.raises(InvariantViolated) as refused:
        evolve(history(OPEN), stray, T0)  # type: ignore[arg-type]

    # Its type only: an event's fields may hold personal data, which no message repeats.
    assert str(refused.value) == "unknown case event MergeCases"


def test_no_event_precedes_the_opening_and_the_refusal_names_the_event_type() -> None:
    note: CaseEvent = decide(AddNote(CASE, "n-1", "text"), history(OPEN))[0]

    with pytest.raises(InvariantViolated) as refused:
        evolve(None, note, T0)

    assert str(refused.value) == "crm.case.CaseNoteAdded.v1 cannot precede CaseOpened"
