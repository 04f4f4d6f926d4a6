"""Given/when/then tests of agent empowerment: grant within the limit, a supervisor above it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from crm.errors import AlreadyExists, InvalidInput, InvariantViolated, PermissionDenied
from crm.vocabulary import Channel, Priority
from services.case.commands import (
    CaseCommand,
    CloseCase,
    OpenCase,
    ResolveCase,
    SetPendingOnCustomer,
)
from services.case.compensation import (
    MAX_AMOUNT_MINOR,
    CompensationGranted,
    CompensationKind,
    CompensationRejected,
    CompensationRequested,
    DecideCompensation,
    OfferCompensation,
)
from services.case.domain import Case, decide, evolve
from services.case.events import CaseEvent, Category
from services.case.limits import CompensationLimits, load_limits

T0 = datetime(2026, 4, 6, 9, 0, tzinfo=UTC)
CASE = "case-9"
OPEN = OpenCase(
    CASE, "cust-9", Channel.CHAT, Category.SHIPPING_FEES, Priority.NORMAL, "Late parcel", ""
)
REFUND = CompensationKind.REFUND


def given(*commands: CaseCommand) -> Case:
    state: Case | None = None
    for index, command in enumerate(commands):
        for event in decide(command, state):
            state = evolve(state, event, T0 + timedelta(minutes=index))
    assert state is not None
    return state


def offer(amount: int, limit: int = 5000, compensation_id: str = "k1") -> OfferCompensation:
    return OfferCompensation(CASE, compensation_id, REFUND, amount, "JPY", "", limit, "JPY")


def test_within_the_limit_it_is_granted_at_once() -> None:
    events: list[CaseEvent] = decide(offer(5000), given(OPEN))
    assert events == [CompensationGranted(CASE, "k1", REFUND, 5000, "JPY", 5000, False, "")]


def test_above_the_limit_it_waits_for_a_supervisor() -> None:
    state = given(OPEN, offer(5001))
    assert [p.compensation_id for p in state.compensations.pending] == ["k1"]
    assert decide(offer(5001, compensation_id="k2"), state)[0] == CompensationRequested(
        CASE, "k2", REFUND, 5001, "JPY", 5000, ""
    )


def test_another_currency_than_the_limit_needs_approval() -> None:
    command = OfferCompensation(CASE, "k1", REFUND, 10, "EUR", "", 5000, "JPY")
    assert isinstance(decide(command, given(OPEN))[0], CompensationRequested)


def test_a_supervisor_approves_a_request() -> None:
    state = given(OPEN, offer(9000))
    approve = DecideCompensation(CASE, "k1", True, "loyal customer", by_supervisor=True)
    (granted,) = decide(approve, state)
    assert granted == CompensationGranted(
        CASE, "k1", REFUND, 9000, "JPY", 5000, True, "loyal customer"
    )
    assert given(OPEN, offer(9000), approve).compensations.pending == ()


def test_a_supervisor_rejects_a_request_with_a_reason() -> None:
    state = given(OPEN, offer(9000))
    with pytest.raises(InvalidInput) as refused:
        decide(DecideCompensation(CASE, "k1", False, "", by_supervisor=True), state)
    assert refused.value.field == "reason"
    reject = DecideCompensation(CASE, "k1", False, "outside policy", by_supervisor=True)
    assert decide(reject, state) == [CompensationRejected(CASE, "k1", "outside policy")]


def test_only_a_supervisor_decides() -> None:
    state = given(OPEN, offer(9000))
    with pytest.raises(PermissionDenied):
        decide(DecideCompensation(CASE, "k1", True), state)


def test_nothing_to_decide_without_a_request() -> None:
    state = given(OPEN, offer(100))
    with pytest.raises(InvariantViolated, match="awaits no decision"):
        decide(DecideCompensation(CASE, "k1", True, by_supervisor=True), state)


def test_the_same_compensation_cannot_be_offered_twice() -> None:
    with pytest.raises(AlreadyExists):
        decide(offer(100), given(OPEN, offer(100)))


@pytest.mark.parametrize(
    ("amount", "currency", "field"), [(0, "JPY", "amount_minor"), (5, "yen", "currency")]
)
def test_bad_amounts_and_currencies_are_refused(amount: int, currency: str, field: str) -> None:
    command = OfferCompensation(CASE, "k1", REFUND, amount, currency, "", 5000, "JPY")
    with pytest.raises(InvalidInput) as refused:
        decide(command, given(OPEN))
    assert refused.value.field == field


def test_no_compensation_on_a_closed_case() -> None:
    state = given(OPEN, CloseCase(CASE, "duplicate ticket"))
    with pytest.raises(InvariantViolated):
        decide(offer(100), state)


def test_limits_come_from_configuration() -> None:
    limits = load_limits('{"currency": "EUR", "default_minor": 2000, "agents": {"agent-7": 9000}}')
    assert (limits.for_agent("agent-7"), limits.for_agent("agent-1")) == (9000, 2000)
    assert CompensationLimits().for_agent("anyone") == 10_000
    with pytest.raises(InvalidInput) as refused:
        load_limits('{"agents": {"agent-7": -1}}')
    assert refused.value.field == "compensation_limits.agents"


def test_a_request_does_not_forget_the_compensations_decided_before() -> None:
    state = given(OPEN, offer(100, compensation_id="k1"), offer(9000, compensation_id="k2"))

    with pytest.raises(AlreadyExists) as refused:
        decide(offer(100, compensation_id="k1"), state)

    assert str(refused.value) == "compensation k1 exists already"


@pytest.mark.parametrize("amount", [1, MAX_AMOUNT_MINOR])
def test_amounts_at_the_bounds_are_accepted(amount: int) -> None:
    (event,) = decide(offer(amount), given(OPEN))

    assert isinstance(event, CompensationGranted | CompensationRequested)
    assert event.amount_minor == amount


@pytest.mark.parametrize(
    ("command", "text"),
    [
        (offer(MAX_AMOUNT_MINOR + 1), f"amount_minor: must be between 1 and {MAX_AMOUNT_MINOR}"),
        (
            OfferCompensation(CASE, "k1", REFUND, 5, "Yen", "", 5000, "JPY"),
            "currency: must be a three-letter ISO 4217 code such as JPY",
        ),
    ],
)
def test_a_bad_amount_or_currency_is_refused_saying_what_is_allowed(
    command: OfferCompensation, text: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(command, given(OPEN))

    assert str(refused.value) == text


def test_an_approval_reason_is_limited_and_named() -> None:
    approve = DecideCompensation(CASE, "k1", True, "r" * 501, by_supervisor=True)

    with pytest.raises(InvalidInput) as refused:
        decide(approve, given(OPEN, offer(9000)))

    assert refused.value.field == "reason"


def test_only_a_supervisor_decides_and_is_told_so() -> None:
    with pytest.raises(PermissionDenied) as refused:
        decide(DecideCompensation(CASE, "k1", True), given(OPEN, offer(9000)))

    assert str(refused.value) == "only a supervisor approves or rejects a compensation request"


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (OfferCompensation(CASE, "bad id", REFUND, 5, "JPY", "", 5000, "JPY"), "compensation_id"),
        (OfferCompensation(CASE, "k1", REFUND, 5, "JPY", "n" * 501, 5000, "JPY"), "note"),
    ],
)
def test_a_malformed_offer_is_refused_naming_the_field(
    command: OfferCompensation, field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(command, given(OPEN))

    assert refused.value.field == field


@pytest.mark.parametrize(
    "before",
    [
        (OPEN, SetPendingOnCustomer(CASE, "waiting for the receipt")),
        (OPEN, ResolveCase(CASE, "delivered")),
    ],
    ids=["pending", "resolved"],
)
def test_compensation_is_offered_on_a_pending_or_resolved_case(
    before: tuple[CaseCommand, ...],
) -> None:
    # A goodwill refund often comes while waiting on the customer, or once the case is settled.
    events = decide(offer(100), given(*before))

    assert events == [CompensationGranted(CASE, "k1", REFUND, 100, "JPY", 5000, False, "")]
