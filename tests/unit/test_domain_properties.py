"""Properties of the pure core: random command sequences keep every invariant, replay equals live.

Commands are drawn from small pools (three departments, two agents, two teams, a few customers) so
that collisions, repeats and illegal transitions happen often; refused commands must be refused with
a DomainError and nothing else.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from crm.errors import DomainError, InvariantViolated
from crm.vocabulary import ActorKind, Channel, Direction
from services.bootstrap import CODEC
from services.case import domain as case_domain
from services.case import escalation
from services.case.commands import CaseCommand, RecordContact
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
    ContactHandedOver,
    ContactOutcome,
    ContactRecorded,
)
from services.customer import domain as customer_domain
from services.customer.commands import (
    ChangeTier,
    CustomerCommand,
    MergeCustomers,
    RecordCancellation,
    RecordPurchase,
    RecordRenewal,
    RegisterCustomer,
    UndoMerge,
    UpdateContactPoints,
)
from services.customer.events import (
    CancellationRecorded,
    ContactPoint,
    ContactPointsUpdated,
    CustomerEvent,
    CustomerRegistered,
    Lifecycle,
    PurchaseRecorded,
    RenewalRecorded,
    Segment,
    Tier,
    TierChanged,
)
from tests.case_strategies import CASE_ID, DEPARTMENTS, case_commands, instant, mostly, valid_open

PROPERTY_SETTINGS = settings(max_examples=150, deadline=None)


def assert_round_trips(event: Any) -> None:
    """The stored JSON form decodes to an equal event of the same type."""
    type_name, data = CODEC.encode(event)
    assert type_name == type(event).TYPE
    decoded = CODEC.decode(type_name, data)
    assert type(decoded) is type(event)
    assert decoded == event


# ---------------------------------------------------------------- case commands
# The command strategies live in tests/case_strategies.py, shared with the case view's property.

# Which statuses each event may be decided from; None means "before the case exists".
ALLOWED_BEFORE: dict[type[Any], set[CaseStatus | None]] = {
    CaseOpened: {None},
    ContactRecorded: {
        CaseStatus.OPEN,
        CaseStatus.PENDING_CUSTOMER,
        CaseStatus.RESOLVED,
    },
    ContactHandedOver: {
        CaseStatus.OPEN,
        CaseStatus.PENDING_CUSTOMER,
        CaseStatus.RESOLVED,
    },
    CasePriorityChanged: {
        CaseStatus.OPEN,
        CaseStatus.PENDING_CUSTOMER,
        CaseStatus.RESOLVED,
    },
    CaseAssigned: {CaseStatus.OPEN, CaseStatus.PENDING_CUSTOMER},
    # Escalation follows the command that triggered it, e.g. the second reopening of a case.
    escalation.CaseEscalationChanged: {
        CaseStatus.OPEN,
        CaseStatus.PENDING_CUSTOMER,
        CaseStatus.RESOLVED,
    },
    CaseTransferred: {CaseStatus.OPEN, CaseStatus.PENDING_CUSTOMER},
    CasePendingOnCustomer: {CaseStatus.OPEN},
    CaseResumed: {CaseStatus.PENDING_CUSTOMER},
    CaseResolved: {CaseStatus.OPEN, CaseStatus.PENDING_CUSTOMER},
    CaseReopened: {CaseStatus.RESOLVED},
    CaseClosed: {
        CaseStatus.OPEN,
        CaseStatus.PENDING_CUSTOMER,
        CaseStatus.RESOLVED,
    },
    CaseNoteAdded: set(CaseStatus),
}


def fold_case(events: Sequence[CaseEvent]) -> case_domain.Case | None:
    """Replay a whole stream, with the same instants the live run used."""
    state: case_domain.Case | None = None
    for index, event in enumerate(events):
        state = case_domain.evolve(state, event, instant(index))
    return state


def expected_first_response(events: Sequence[CaseEvent]) -> datetime | None:
    """Start of the first contact where a human agent reached the customer."""
    for event in events:
        if (
            isinstance(event, ContactRecorded)
            and event.handler_kind in (ActorKind.AGENT, ActorKind.SUPERVISOR)
            and event.outcome is not ContactOutcome.ABANDONED
            and (event.outcome is ContactOutcome.ANSWERED or event.direction is Direction.OUTBOUND)
        ):
            return event.started_at
    return None


def check_decision(
    before: case_domain.Case | None, command: CaseCommand, decided: list[CaseEvent]
) -> None:
    """Each decided batch is well formed with respect to the state it was decided from."""
    assert decided, "an accepted command records at least one event"
    assert all(e.case_id == CASE_ID for e in decided)
    status = before.status if before else None
    for event in decided:
        assert status in ALLOWED_BEFORE[type(event)], (type(event).__name__, status)
    first = decided[0]
    if isinstance(first, ContactRecorded):
        assert isinstance(command, RecordContact)
        handed = [e for e in decided if isinstance(e, ContactHandedOver)]
        if first.outcome is ContactOutcome.HANDED_TO_HUMAN:
            assert first.handler_kind is ActorKind.BOT
            assert len(handed) == 1
            assert handed[0].contact_id == first.contact_id
            assert handed[0].from_bot_id == first.handler_id
        else:
            assert handed == []
        customer_answered = (
            first.direction is Direction.INBOUND and first.outcome is not ContactOutcome.ABANDONED
        )
        resumed = before is not None and before.status is CaseStatus.PENDING_CUSTOMER
        assert isinstance(decided[-1], CaseResumed) == (resumed and customer_answered)
        if first.outcome is ContactOutcome.BOT_RESOLVED:
            assert first.handler_kind is ActorKind.BOT
    else:
        own = [e for e in decided if not isinstance(e, escalation.CaseEscalationChanged)]
        assert len(own) == 1 or isinstance(
            command, escalation.EscalateCase | escalation.DeEscalateCase
        )
    escalations = [e for e in decided if isinstance(e, escalation.CaseEscalationChanged)]
    assert len(escalations) <= 1
    for change in escalations:
        assert change.added or change.removed
        assert change.from_level == (before.escalation_level if before else 0)
        assert change.to_level == escalation.level_of(change.reasons)
    for event in decided:
        match event:
            case CaseTransferred():
                assert before is not None
                assert event.from_department == before.department
                assert event.to_department != event.from_department
            case CaseAssigned():
                assert before is not None
                assert (event.previous_agent_id, event.previous_team) == (
                    before.assignee,
                    before.team,
                )
                assert (event.agent_id, event.team) != (
                    event.previous_agent_id,
                    event.previous_team,
                )
            case CasePriorityChanged():
                assert before is not None
                assert event.from_priority is before.priority
                assert event.to_priority is not event.from_priority
            case CaseClosed():
                assert before is not None
                if before.status is not CaseStatus.RESOLVED:
                    assert event.reason.strip()
            case _:
                pass


def check_case_invariants(state: case_domain.Case, events: Sequence[CaseEvent]) -> None:
    """What must hold of the folded case after any accepted prefix of history."""
    assert isinstance(events[0], CaseOpened)
    assert not any(isinstance(e, CaseOpened) for e in events[1:])
    assert state.contact_count == sum(isinstance(e, ContactRecorded) for e in events)
    assert state.transfer_count == sum(isinstance(e, CaseTransferred) for e in events)
    assert state.reopen_count == sum(isinstance(e, CaseReopened) for e in events)
    assert state.note_count == sum(isinstance(e, CaseNoteAdded) for e in events)

    transfers = [e for e in events if isinstance(e, CaseTransferred)]
    assert state.department == (transfers[-1].to_department if transfers else events[0].department)
    assert state.department in DEPARTMENTS

    closes = [i for i, e in enumerate(events) if isinstance(e, CaseClosed)]
    assert len(closes) <= 1
    if closes:
        assert state.status is CaseStatus.CLOSED
        assert state.closed_at == instant(closes[0])
        after_close = events[closes[0] + 1 :]
        assert all(
            isinstance(e, CaseNoteAdded | escalation.CaseEscalationChanged) for e in after_close
        )
    else:
        assert state.status is not CaseStatus.CLOSED
        assert state.closed_at is None

    if state.status in (CaseStatus.RESOLVED, CaseStatus.CLOSED):
        assert state.escalation == (), "resolving or closing a case clears its escalation"
    transfers_so_far = sum(isinstance(e, CaseTransferred) for e in events)
    if state.status is CaseStatus.OPEN and transfers_so_far >= 2:
        assert escalation.EscalationReason.BOUNCED in state.escalation or any(
            isinstance(e, CaseResolved | CaseClosed) for e in events
        )
    outcomes = [e for e in events if isinstance(e, CaseResolved | CaseReopened)]
    for previous, current in itertools.pairwise(outcomes):
        assert type(previous) is not type(current), "resolved twice or reopened twice in a row"
    resolved_now = bool(outcomes) and isinstance(outcomes[-1], CaseResolved)
    assert (state.resolved_at is not None) == resolved_now
    assert bool(state.resolution_code) == resolved_now
    if state.status is CaseStatus.RESOLVED:
        assert resolved_now
    if resolved_now:
        assert state.status in (CaseStatus.RESOLVED, CaseStatus.CLOSED)
        last_resolve = max(i for i, e in enumerate(events) if isinstance(e, CaseResolved))
        assert state.resolved_at == instant(last_resolve)

    assert state.first_response_at == expected_first_response(events)
    if state.first_response_at is not None:
        assert state.contact_count >= 1
    if state.transfer_count == 0:
        assert state.department == events[0].department


@PROPERTY_SETTINGS
@given(st.lists(case_commands, min_size=10, max_size=40))
def test_random_case_histories_keep_every_invariant(commands: list[CaseCommand]) -> None:
    state: case_domain.Case | None = None
    history: list[CaseEvent] = []
    for command in [valid_open, *commands]:
        try:
            decided = case_domain.decide(command, state)
        except DomainError:
            # Refused: nothing recorded. Any other exception escapes and fails the test.
            continue
        assert case_domain.decide(command, state) == decided, "decide is deterministic"
        check_decision(state, command, decided)
        for event in decided:
            assert_round_trips(event)
            state = case_domain.evolve(state, event, instant(len(history)))
            history.append(event)
        assert state is not None
        check_case_invariants(state, history)
        assert fold_case(history) == state, "replay equals the live state"
    assert fold_case(history) == fold_case(list(history)), "folding is deterministic"


# ---------------------------------------------------------------- customer commands

CUSTOMER_ID = "cust-1"
POINTS = [
    ContactPoint(Channel.EMAIL, "hana@example.com"),
    ContactPoint(Channel.PHONE, "+81-3-1234-5678"),
    ContactPoint(Channel.SOCIAL, "@hana"),
    ContactPoint(Channel.EMAIL, " "),
]
point_lists = st.lists(mostly(POINTS[:3], POINTS[3:]), max_size=4).map(tuple)
registrations = st.builds(
    RegisterCustomer,
    customer_id=mostly([CUSTOMER_ID], ["bad id"]),
    name=mostly(["Hana Sato"], ["", "n" * 201]),
    contact_points=point_lists,
    language=mostly(["ja", "pt-BR"], ["", "en_US", "日本"]),
    segment=st.sampled_from(Segment),
    company=st.sampled_from(["", "Sato KK"]),
    tier=st.sampled_from(Tier),
)
customer_commands: st.SearchStrategy[CustomerCommand] = st.one_of(
    registrations,
    st.builds(UpdateContactPoints, st.just(CUSTOMER_ID), point_lists),
    st.builds(
        ChangeTier,
        st.just(CUSTOMER_ID),
        st.sampled_from(Tier),
        mostly(["", "loyal for years"], ["r" * 501]),
    ),
    st.builds(
        RecordPurchase,
        st.just(CUSTOMER_ID),
        mostly(["order-1", "order-2"], [""]),
        mostly(["Fibre 1G"], [""]),
        st.one_of(
            st.integers(0, 100_000),
            mostly(
                [0, customer_domain.MAX_AMOUNT_MINOR], [-1, customer_domain.MAX_AMOUNT_MINOR + 1]
            ),
        ),
        mostly(["EUR", "JPY"], ["eur", "EU", "ÉUR"]),
    ),
    st.builds(
        RecordRenewal,
        st.just(CUSTOMER_ID),
        mostly(["contract-1"], ["bad id"]),
        mostly(["Fibre 1G"], [""]),
    ),
    st.builds(
        RecordCancellation,
        st.just(CUSTOMER_ID),
        mostly(["contract-1"], [""]),
        mostly(["", "moving"], ["r" * 501]),
    ),
)


def fold_customer(events: Sequence[CustomerEvent]) -> customer_domain.Customer | None:
    """Replay a whole customer stream with the instants the live run used."""
    state: customer_domain.Customer | None = None
    for index, event in enumerate(events):
        state = customer_domain.evolve(state, event, instant(index))
    return state


def check_customer_invariants(
    state: customer_domain.Customer, events: Sequence[CustomerEvent]
) -> None:
    """What must hold of a (never merged) customer after any accepted prefix of history."""
    registered = events[0]
    assert isinstance(registered, CustomerRegistered)
    assert not any(isinstance(e, CustomerRegistered) for e in events[1:])
    assert state.registered_at == instant(0)
    if registered.segment is Segment.B2B:
        assert registered.company.strip()

    facts = [
        e
        for e in events
        if isinstance(
            e,
            PurchaseRecorded | RenewalRecorded | CancellationRecorded,
        )
    ]
    if not facts:
        assert state.lifecycle is Lifecycle.PRE_PURCHASE
    elif isinstance(facts[-1], CancellationRecorded):
        assert state.lifecycle is Lifecycle.CHURNED
    else:
        assert state.lifecycle is Lifecycle.CUSTOMER

    tiers = [e for e in events if isinstance(e, TierChanged)]
    assert state.tier is (tiers[-1].to_tier if tiers else registered.tier)
    previous_tier = registered.tier
    for change in tiers:
        assert change.from_tier is previous_tier
        assert change.to_tier is not change.from_tier
        previous_tier = change.to_tier

    updates = [e for e in events if isinstance(e, ContactPointsUpdated)]
    assert state.contact_points == (
        updates[-1].contact_points if updates else registered.contact_points
    )
    assert len(set(state.contact_points)) == len(state.contact_points)
    assert all(p.address.strip() for p in state.contact_points)

    for purchase in (e for e in events if isinstance(e, PurchaseRecorded)):
        assert 0 <= purchase.amount_minor <= customer_domain.MAX_AMOUNT_MINOR
        assert len(purchase.currency) == 3
        assert purchase.currency.isascii() and purchase.currency.isupper()


@PROPERTY_SETTINGS
@given(st.lists(customer_commands, min_size=5, max_size=30))
def test_random_customer_histories_keep_every_invariant(
    commands: list[CustomerCommand],
) -> None:
    state: customer_domain.Customer | None = None
    history: list[CustomerEvent] = []
    for command in commands:
        try:
            decided = customer_domain.decide(command, state)
        except DomainError:
            continue
        assert len(decided) == 1
        assert customer_domain.decide(command, state) == decided, "decide is deterministic"
        for event in decided:
            assert event.customer_id == CUSTOMER_ID
            assert_round_trips(event)
            state = customer_domain.evolve(state, event, instant(len(history)))
            history.append(event)
        assert state is not None
        check_customer_invariants(state, history)
        assert fold_customer(history) == state, "replay equals the live state"


# ---------------------------------------------------------------- merges

POOL = ["cust-a", "cust-b", "cust-c", "cust-d"]


@dataclass(frozen=True)
class Merge:
    duplicate: str
    survivor: str


@dataclass(frozen=True)
class Undo:
    duplicate: str
    survivor: str | None  # who the caller claims it was merged into; None: the right one
    reason: str


@dataclass(frozen=True)
class Touch:
    """A profile command on one pool member: refused while it is merged away."""

    customer_id: str
    tier: Tier


pool_ids = st.sampled_from(POOL)
merge_steps: st.SearchStrategy[Merge | Undo | Touch] = st.one_of(
    st.builds(Merge, pool_ids, pool_ids),
    st.builds(Undo, pool_ids, mostly([None], POOL), mostly(["mistake", "different people"], [""])),
    st.builds(Touch, pool_ids, st.sampled_from(Tier)),
)


class Pool:
    """A few customers, each with its own stream, as the application would keep them."""

    def __init__(self) -> None:
        self.streams: dict[str, list[CustomerEvent]] = {}
        self.states: dict[str, customer_domain.Customer] = {}
        for customer_id in POOL:
            registered = CustomerRegistered(
                customer_id,
                "Same Person",
                (),
                "en",
                Segment.B2C,
                "",
                Tier.STANDARD,
            )
            self.streams[customer_id] = []
            self.append(registered)

    def append(self, event: CustomerEvent) -> None:
        stream = self.streams[event.customer_id]
        previous = self.states.get(event.customer_id)
        self.states[event.customer_id] = customer_domain.evolve(
            previous, event, instant(len(stream))
        )
        stream.append(event)
        assert_round_trips(event)

    def check(self) -> None:
        """Merges form a forest of depth one that both sides of every pair agree on."""
        for customer_id, state in self.states.items():
            assert state.merged_into != customer_id
            assert not (state.merged_into and state.duplicates), "merged away yet absorbing"
            assert bool(state.merged_into) == bool(state.merge_id)
            assert len(set(state.duplicates)) == len(state.duplicates)
            absorbed = {d for d, other in self.states.items() if other.merged_into == customer_id}
            assert set(state.duplicates) == absorbed
            seen = {customer_id}
            current = state
            while current.merged_into:
                assert current.merged_into not in seen, "merge cycle"
                seen.add(current.merged_into)
                current = self.states[current.merged_into]
            assert len(seen) <= 2, "merge chains are never longer than one hop"
            assert fold_customer(self.streams[customer_id]) == state


@PROPERTY_SETTINGS
@given(st.lists(merge_steps, min_size=5, max_size=30))
def test_random_merges_and_undos_keep_the_pool_consistent(
    steps: list[Merge | Undo | Touch],
) -> None:
    pool = Pool()
    for number, step in enumerate(steps):
        match step:
            case Merge(duplicate, survivor):
                command = MergeCustomers(duplicate, survivor, f"merge-{number}", "same")
                try:
                    merged, absorbed = customer_domain.decide_merge(
                        command, pool.states[duplicate], pool.states[survivor]
                    )
                except DomainError:
                    continue
                assert duplicate != survivor
                assert (merged.customer_id, merged.into_customer_id) == (duplicate, survivor)
                assert (absorbed.customer_id, absorbed.duplicate_customer_id) == (
                    survivor,
                    duplicate,
                )
                assert merged.merge_id == absorbed.merge_id == f"merge-{number}"
                pool.append(merged)
                pool.append(absorbed)
            case Undo(duplicate, claimed, reason):
                survivor = claimed or pool.states[duplicate].merged_into or duplicate
                try:
                    undone, released = customer_domain.decide_unmerge(
                        UndoMerge(duplicate, reason),
                        pool.states[duplicate],
                        pool.states[survivor],
                    )
                except DomainError:
                    continue
                assert pool.states[duplicate].merged_into == survivor
                assert undone.merge_id == released.merge_id == pool.states[duplicate].merge_id
                pool.append(undone)
                pool.append(released)
            case Touch(customer_id, tier):
                state = pool.states[customer_id]
                try:
                    decided = customer_domain.decide(ChangeTier(customer_id, tier), state)
                except InvariantViolated as refused:
                    if state.merged_into:
                        assert state.merged_into in str(refused), "the refusal names the survivor"
                    else:
                        assert tier is state.tier
                    continue
                assert not state.merged_into
                for event in decided:
                    pool.append(event)
        pool.check()
