"""Every case command an agent may send is kept to the agent's teams by the case application.

Through the real command path on SQLite: each command on another team's case is refused with
PermissionDenied before it is decided, appending nothing; the same command by an agent of the
case's team is not refused for its team (it may still be refused by the case's own rules).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from crm.command_handling import CommandContext
from crm.errors import DomainError, PermissionDenied
from crm.eventstore.sqlite import SqliteEventStore
from crm.vocabulary import Actor, ActorKind, Channel, Direction, Priority
from services.bootstrap import Applications, build_applications, system_clock
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
from services.case.compensation import CompensationKind, OfferCompensation
from services.case.escalation import EscalateCase
from services.case.events import Category, ContactOutcome
from services.customer.commands import RegisterCustomer
from services.customer.events import Segment

CASE = "k-1"
AGENT_7 = Actor(ActorKind.AGENT, "agent-7")
NOW = datetime.now(UTC) - timedelta(minutes=5)
WORK: list[CaseCommand] = [
    AssignCase(CASE, "agent-7", "billing"),  # taking it over
    AssignCase(CASE, "agent-3", "technical"),
    TransferCase(CASE, "billing", "not ours"),
    ChangePriority(CASE, Priority.HIGH),
    AddNote(CASE, "note-1", "called back"),
    SetPendingOnCustomer(CASE, "waiting for the invoice"),
    ResumeCase(CASE),
    ResolveCase(CASE, "refund_issued"),
    ReopenCase(CASE, "still charged"),
    CloseCase(CASE, "duplicate"),
    EscalateCase(CASE, 1, "keep an eye"),
    OfferCompensation(CASE, "comp-1", CompensationKind.REFUND, 500, "JPY"),
    RecordContact(
        CASE,
        "contact-1",
        Channel.PHONE,
        Direction.OUTBOUND,
        ActorKind.AGENT,
        "agent-7",
        ContactOutcome.ANSWERED,
        NOW,
    ),
]


@pytest.fixture
def technical_case(tmp_path: Path) -> Iterator[tuple[Applications, SqliteEventStore]]:
    store = SqliteEventStore(tmp_path / "events.db")
    apps = build_applications(store, system_clock)
    system = Actor(ActorKind.SYSTEM, "shop")
    apps.customers.handle(
        RegisterCustomer("c-1", "Mio Sasaki", (), "ja", Segment.B2C),
        CommandContext("register", system, NOW),
    )
    apps.cases.handle(
        OpenCase(CASE, "c-1", Channel.PHONE, Category.BILLING_PAYMENT, Priority.NORMAL, "s", ""),
        CommandContext("open", system, NOW),
    )
    supervisor = Actor(ActorKind.SUPERVISOR, "sup-1")
    apps.cases.handle(
        AssignCase(CASE, "agent-9", "technical"), CommandContext("assign", supervisor, NOW)
    )
    yield apps, store
    store.close()


def _agent(request_id: str, *teams: str) -> CommandContext:
    return CommandContext(request_id, AGENT_7, NOW, teams=frozenset(teams))


@pytest.mark.parametrize("command", WORK, ids=lambda c: type(c).__name__)
def test_every_command_on_another_teams_case_is_refused_and_appends_nothing(
    technical_case: tuple[Applications, SqliteEventStore], command: CaseCommand
) -> None:
    apps, store = technical_case
    before = store.last_position()
    for teams in (("billing",), ()):
        with pytest.raises(PermissionDenied, match="is worked by team technical"):
            apps.cases.handle(command, _agent(f"refused-{len(teams)}", *teams))
    assert store.last_position() == before
    assert store.find_request("refused-1") == [] and store.find_request("refused-0") == []


@pytest.mark.parametrize("command", WORK, ids=lambda c: type(c).__name__)
def test_the_same_command_by_an_agent_of_the_team_is_not_refused_for_its_team(
    technical_case: tuple[Applications, SqliteEventStore], command: CaseCommand
) -> None:
    apps, _ = technical_case
    # The case's own rules (its status) may refuse some (a DomainError); PermissionDenied is not
    # one, so a refusal for the team fails the test.
    with contextlib.suppress(DomainError):
        apps.cases.handle(command, _agent("allowed", "technical", "vip"))
