"""The hand-over summary says who, what, how many contacts and transfers, where it stands."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm.vocabulary import ActorKind, Channel, Direction, Priority
from services.case.commands import (
    AssignCase,
    CaseCommand,
    OpenCase,
    RecordContact,
    ResolveCase,
    TransferCase,
)
from services.case.compensation import CompensationKind, OfferCompensation
from services.case.domain import Case, decide, evolve
from services.case.events import CaseEvent, Category, ContactOutcome
from services.case.sla_facts import RecordSlaFact, SlaApplied, SlaBreached, SlaDue, SlaTarget
from services.case.summary import summarize

T0 = datetime(2026, 4, 6, 9, 0, tzinfo=UTC)
CASE = "case-3"
SUBJECT = "Hanako's card was charged twice"


def history(*commands: CaseCommand) -> list[tuple[CaseEvent, datetime]]:
    state: Case | None = None
    recorded: list[tuple[CaseEvent, datetime]] = []
    for index, command in enumerate(commands):
        at = T0 + timedelta(minutes=index)
        for event in decide(command, state):
            state = evolve(state, event, at)
            recorded.append((event, at))
    return recorded


def contact(contact_id: str, channel: Channel, agent: str) -> RecordContact:
    return RecordContact(
        CASE,
        contact_id,
        channel,
        Direction.INBOUND,
        ActorKind.AGENT,
        agent,
        ContactOutcome.ANSWERED,
        T0,
    )


def test_summary_of_a_bounced_escalated_case() -> None:
    due = T0 + timedelta(hours=1)
    text = summarize(
        history(
            OpenCase(
                CASE, "cust-3", Channel.PHONE, Category.BILLING_PAYMENT, Priority.HIGH, SUBJECT, ""
            ),
            contact("k1", Channel.PHONE, "agent-1"),
            TransferCase(CASE, "billing", "double charge"),
            TransferCase(CASE, "technical", "gateway"),
            contact("k2", Channel.CHAT, "agent-7"),
            AssignCase(CASE, "agent-7", "tech-2"),
            RecordSlaFact(
                CASE,
                SlaApplied(
                    CASE, "default-1", False, (SlaDue(SlaTarget.RESOLUTION, T0, due),), "opened"
                ),
            ),
            RecordSlaFact(CASE, SlaBreached(CASE, SlaTarget.RESOLUTION, due)),
            OfferCompensation(CASE, "c1", CompensationKind.REFUND, 3000, "JPY", "", 5000, "JPY"),
        )
    )
    assert text == (
        "Case case-3 for customer cust-3 was opened on phone on 2026-04-06: billing payment,"
        " priority high. 2 contacts (1 chat, 1 phone; 2 inbound, 0 outbound), handled by"
        " agent-1, agent-7. It was transferred 2 times: support -> billing -> technical."
        " It is open in technical, assigned to agent-7 in team tech-2."
        " Escalation level 2: bounced, sla breached."
        " SLA missed for resolution. Compensation granted: refund 3000 JPY."
    )
    assert "Hanako" not in text


def test_summary_of_a_quiet_resolved_case() -> None:
    text = summarize(
        history(
            OpenCase(
                CASE, "cust-3", Channel.EMAIL, Category.USAGE_QUESTION, Priority.LOW, SUBJECT, ""
            ),
            ResolveCase(CASE, "answered-faq"),
        )
    )
    assert text == (
        "Case case-3 for customer cust-3 was opened on email on 2026-04-06: usage question,"
        " priority low. No contact is recorded yet. It stayed in support."
        " It is resolved with code answered-faq in support. No escalation is open."
    )


def test_an_empty_history_has_no_summary() -> None:
    assert summarize([]) == ""
