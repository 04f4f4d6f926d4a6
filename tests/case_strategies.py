"""Hypothesis strategies for case commands, shared by the properties of the case's folds.

Commands are drawn from small pools (three departments, two agents, two teams, a few ids) so that
collisions, repeats and illegal transitions happen often; invalid values are drawn a fifth of the
time, so refusals are exercised too. `case_commands` covers the core lifecycle;
`commands_before_closing` adds what other processes and supervisors ask of a case (escalations, SLA
facts, compensation) but leaves closing out, so that a property can close a long history at its end.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from hypothesis import strategies as st

from crm.errors import DomainError, PermissionDenied
from crm.validation import MAX_SECONDS
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
from services.case.compensation import CompensationKind, DecideCompensation, OfferCompensation
from services.case.escalation import (
    CRITICAL_DEPARTMENTS,
    DeEscalateCase,
    EscalateCase,
    EscalationReason,
    RaiseEscalation,
)
from services.case.events import Category, ContactOutcome
from services.case.sla_facts import (
    RecordSlaFact,
    SlaApplied,
    SlaAtRisk,
    SlaBreached,
    SlaDue,
    SlaEvent,
    SlaFulfilled,
    SlaPaused,
    SlaResumed,
    SlaTarget,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
CASE_ID = "case-1"
DEPARTMENTS = ["support", "billing", "technical"]
AGENTS = ["agent-1", "agent-2"]
TEAMS = ["team-a", "team-b"]
# What `decide` may refuse with; anything else escaping it is a bug.
REFUSALS = (DomainError, PermissionDenied)


def instant(index: int) -> datetime:
    """The fixed instant at which the index-th event of a stream occurred."""
    return T0 + timedelta(seconds=index)


T = TypeVar("T")


def mostly(valid: Sequence[T], invalid: Sequence[T] = ()) -> st.SearchStrategy[T]:
    """Valid values four times as often as invalid ones, shrinking towards the first valid one."""
    return st.sampled_from([*valid, *valid, *valid, *valid, *invalid])


# ---------------------------------------------------------------- the core lifecycle

reasons = mostly(["because", "customer asked"], ["", "   ", "r" * 501])
optional_reasons = mostly(["", "because"], ["r" * 501])
valid_open = OpenCase(
    CASE_ID,
    "cust-1",
    Channel.PHONE,
    Category.TECHNICAL_TROUBLE,
    Priority.NORMAL,
    "Router keeps rebooting",
    "",
)
open_cases = st.builds(
    OpenCase,
    case_id=mostly([CASE_ID], [""]),
    customer_id=mostly(["cust-1"], ["bad id"]),
    channel=st.sampled_from(Channel),
    category=st.sampled_from(Category),
    priority=st.sampled_from(Priority),
    subject=mostly(["Subject"], ["", "s" * 201]),
    description=mostly(["", "details"], ["d" * 10_001]),
    department=mostly(DEPARTMENTS, [""]),
)
seconds = st.one_of(st.integers(0, 3_600), mostly([0, MAX_SECONDS], [-1, MAX_SECONDS + 1]))
any_time_in_2026 = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
)


@st.composite
def contacts(
    draw: st.DrawFn,
    contact_ids: Sequence[str] = ("contact-1", "contact-2"),
    starts: st.SearchStrategy[datetime] = any_time_in_2026,
) -> RecordContact:
    """Mostly coherent contacts (a hand-over target only on a hand-over), sometimes not."""
    outcome = draw(st.sampled_from(ContactOutcome))
    bot_only = outcome in (ContactOutcome.BOT_RESOLVED, ContactOutcome.HANDED_TO_HUMAN)
    kinds = [ActorKind.BOT] if bot_only else [ActorKind.AGENT, ActorKind.SUPERVISOR, ActorKind.BOT]
    others = [k for k in ActorKind if k not in kinds]
    kind = draw(mostly(kinds, others))
    agent, team = "", ""
    if outcome is ContactOutcome.HANDED_TO_HUMAN or draw(mostly([False], [True])):
        agent = draw(mostly(["", *AGENTS], ["bad id"]))
        team = draw(st.sampled_from(["", *TEAMS]))
    return RecordContact(
        case_id=CASE_ID,
        contact_id=draw(mostly(contact_ids, [""])),
        channel=draw(st.sampled_from(Channel)),
        direction=draw(st.sampled_from(Direction)),
        handler_kind=kind,
        handler_id=draw(mostly(["agent-1", "bot-1"], ["bad id"])),
        outcome=outcome,
        started_at=draw(starts),
        talk_seconds=draw(seconds),
        hold_seconds=draw(seconds),
        after_work_seconds=draw(seconds),
        handover_to_agent_id=agent,
        handover_to_team=team,
    )


# Everything but closing, which refuses every later command except a note.
lifecycle_commands: tuple[st.SearchStrategy[CaseCommand], ...] = (
    open_cases,
    contacts(),
    contacts(),
    contacts(),
    st.builds(AssignCase, st.just(CASE_ID), mostly(AGENTS, [""]), st.sampled_from(TEAMS)),
    st.builds(AssignCase, st.just(CASE_ID), mostly(AGENTS, [""]), st.sampled_from(TEAMS)),
    st.builds(TransferCase, st.just(CASE_ID), mostly(DEPARTMENTS, ["bad id"]), reasons),
    st.builds(TransferCase, st.just(CASE_ID), mostly(DEPARTMENTS, ["bad id"]), reasons),
    st.builds(ChangePriority, st.just(CASE_ID), st.sampled_from(Priority), optional_reasons),
    st.builds(
        AddNote,
        st.just(CASE_ID),
        mostly(["note-1", "note-2"], [""]),
        mostly(["a note"], ["", "n" * 10_001]),
    ),
    st.builds(SetPendingOnCustomer, st.just(CASE_ID), reasons),
    st.builds(ResumeCase, st.just(CASE_ID), optional_reasons),
    st.builds(ResumeCase, st.just(CASE_ID), optional_reasons),
    st.builds(
        ResolveCase,
        st.just(CASE_ID),
        mostly(["fixed", "refunded"], ["", "bad code"]),
        mostly(["", "note"], ["n" * 10_001]),
    ),
    st.builds(
        ResolveCase,
        st.just(CASE_ID),
        mostly(["fixed", "refunded"], ["", "bad code"]),
        mostly(["", "note"], ["n" * 10_001]),
    ),
    st.builds(ReopenCase, st.just(CASE_ID), reasons),
    st.builds(ReopenCase, st.just(CASE_ID), reasons),
)
closings = st.builds(CloseCase, mostly([CASE_ID], ["bad/case"]), optional_reasons)
case_commands: st.SearchStrategy[CaseCommand] = st.one_of(*lifecycle_commands, closings)

# ---------------------------------------------------------------- beyond the core lifecycle

# Every valid opening, VIP complaints included (they are escalated as they open).
valid_openings = st.builds(
    OpenCase,
    case_id=st.just(CASE_ID),
    customer_id=st.just("cust-1"),
    channel=st.sampled_from(Channel),
    category=st.sampled_from(Category),
    priority=st.sampled_from(Priority),
    subject=st.just("Subject"),
    description=st.sampled_from(["", "details"]),
    department=st.sampled_from(DEPARTMENTS),
    vip=st.booleans(),
)


def clustered_contacts() -> st.SearchStrategy[RecordContact]:
    """Five ids and starts within ten days, so a third inbound contact within a week happens."""
    return contacts(
        contact_ids=[f"contact-{n}" for n in range(1, 6)],
        starts=st.integers(0, 10 * 24).map(lambda hours: T0 + timedelta(hours=hours)),
    )


escalation_commands: st.SearchStrategy[CaseCommand] = st.one_of(
    st.builds(EscalateCase, st.just(CASE_ID), mostly([1, 2, 3], [0, 4]), reasons),
    st.builds(DeEscalateCase, st.just(CASE_ID), reasons),
    st.builds(RaiseEscalation, st.just(CASE_ID), st.sampled_from(EscalationReason), reasons),
    st.builds(
        TransferCase, st.just(CASE_ID), st.sampled_from(sorted(CRITICAL_DEPARTMENTS)), reasons
    ),
)

sla_targets = st.sampled_from(SlaTarget)
# A few distinct instants, so the earliest due and ties between targets both occur.
sla_instants = st.integers(1, 6).map(lambda hours: T0 + timedelta(hours=hours))


@st.composite
def sla_dues(draw: st.DrawFn) -> tuple[SlaDue, ...]:
    """Dues mostly for both targets, sometimes for one or none; at risk before due."""
    both = tuple(SlaTarget)
    targets = draw(mostly([both], [(SlaTarget.FIRST_RESPONSE,), (SlaTarget.RESOLUTION,), ()]))
    dues = []
    for target in targets:
        due_at = draw(sla_instants)
        dues.append(SlaDue(target, due_at - timedelta(minutes=30), due_at))
    return tuple(dues)


case_ids = mostly([CASE_ID], ["case-2"])
sla_facts: st.SearchStrategy[SlaEvent] = st.one_of(
    st.builds(
        SlaApplied,
        case_ids,
        st.sampled_from(["policy-1", "policy-2"]),
        st.booleans(),
        sla_dues(),
        st.sampled_from(["opened", "priority_changed", "tier_changed", "reopened"]),
    ),
    st.builds(SlaApplied, case_ids, st.just("policy-1"), st.booleans(), sla_dues(), st.just("")),
    st.builds(SlaPaused, case_ids),
    st.builds(SlaResumed, case_ids, sla_dues()),
    st.builds(SlaAtRisk, case_ids, sla_targets, sla_instants),
    st.builds(SlaBreached, case_ids, sla_targets, sla_instants),
    st.builds(SlaFulfilled, case_ids, sla_targets, st.booleans()),
)


def sla_commands() -> st.SearchStrategy[RecordSlaFact]:
    """The supervision process records an SLA fact (sometimes naming another case)."""
    return st.builds(RecordSlaFact, st.just(CASE_ID), sla_facts)


compensation_ids = mostly(["comp-1", "comp-2"], [""])
compensation_commands: st.SearchStrategy[CaseCommand] = st.one_of(
    st.builds(
        OfferCompensation,
        case_id=st.just(CASE_ID),
        compensation_id=compensation_ids,
        kind=st.sampled_from(CompensationKind),
        amount_minor=mostly([500, 50_000], [0]),  # within and above the limit
        currency=mostly(["EUR", "JPY"], ["eur"]),
        note=optional_reasons,
        limit_minor=st.just(10_000),
        limit_currency=st.just("EUR"),
    ),
    st.builds(
        DecideCompensation,
        case_id=st.just(CASE_ID),
        compensation_id=compensation_ids,
        approve=st.booleans(),
        reason=reasons,
        by_supervisor=mostly([True], [False]),
    ),
)

# one_of draws its branches uniformly, flattening nested one_of and dropping a strategy object it
# has seen already; fresh copies of the additions weigh them about as much as the lifecycle.
commands_before_closing: st.SearchStrategy[CaseCommand] = st.one_of(
    *lifecycle_commands,
    *[clustered_contacts() for _ in range(3)],
    escalation_commands,
    *[sla_commands() for _ in range(6)],
    compensation_commands,
)
every_case_command: st.SearchStrategy[CaseCommand] = st.one_of(commands_before_closing, closings)
