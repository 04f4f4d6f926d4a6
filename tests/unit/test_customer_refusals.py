"""The customer aggregate's refusals word for word, and the edges of its limits.

Callers show refusal texts to people and match on the field an InvalidInput names, so both are
part of the API; these tests pin them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from crm.errors import DomainError, InvalidInput, InvariantViolated
from crm.vocabulary import Channel, Priority
from services.case.commands import OpenCase
from services.case.events import CaseOpened, Category
from services.customer.commands import (
    CustomerCommand,
    MergeCustomers,
    RecordPurchase,
    RegisterCustomer,
    UpdateContactPoints,
)
from services.customer.domain import (
    MAX_AMOUNT_MINOR,
    MAX_CONTACT_POINTS,
    Customer,
    decide,
    decide_merge,
    evolve,
)
from services.customer.events import (
    ContactPoint,
    CustomerEvent,
    CustomerRegistered,
    DuplicateAbsorbed,
    Segment,
    Tier,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EMAIL = ContactPoint(Channel.EMAIL, "ken@example.com")
REGISTER = RegisterCustomer(
    customer_id="cust-5",
    name="Ken Mori",
    contact_points=(EMAIL,),
    language="ja",
    segment=Segment.B2B,
    company="Mori Shoji",
    tier=Tier.LOYAL,
)


def registered(customer_id: str = "cust-5") -> CustomerRegistered:
    (event,) = decide(replace(REGISTER, customer_id=customer_id), None)
    assert isinstance(event, CustomerRegistered)
    return event


def given(*events: CustomerEvent) -> Customer:
    """The customer after a history, each event one minute after the previous one."""
    state: Customer | None = None
    for index, event in enumerate(events):
        state = evolve(state, event, T0 + timedelta(minutes=index))
    assert state is not None
    return state


def refusal(command: CustomerCommand, state: Customer | None) -> str:
    with pytest.raises(DomainError) as refused:
        decide(command, state)
    return str(refused.value)


def test_the_folded_profile_keeps_every_registered_field() -> None:
    state = given(registered())

    assert (state.customer_id, state.name, state.language) == ("cust-5", "Ken Mori", "ja")
    assert (state.segment, state.company, state.tier) == (Segment.B2B, "Mori Shoji", Tier.LOYAL)
    assert state.contact_points == (EMAIL,)


@pytest.mark.parametrize(
    ("command", "text"),
    [
        (
            UpdateContactPoints("cust-5", (EMAIL,)),
            "contact_points: unchanged; nothing to record",
        ),
        (
            RecordPurchase("cust-5", "order-1", "Fibre", MAX_AMOUNT_MINOR + 1, "EUR"),
            f"amount_minor: must be between 0 and {MAX_AMOUNT_MINOR}",
        ),
        (
            RecordPurchase("cust-5", "order-1", "Fibre", 1, "eur"),
            "currency: must be a three-letter ISO 4217 code such as EUR",
        ),
        (
            UpdateContactPoints("cust-5", (EMAIL, EMAIL)),
            "contact_points: the same channel and address appear twice",
        ),
        (
            UpdateContactPoints(
                "cust-5",
                tuple(
                    ContactPoint(Channel.EMAIL, f"k{i}@example.com")
                    for i in range(MAX_CONTACT_POINTS + 1)
                ),
            ),
            f"contact_points: at most {MAX_CONTACT_POINTS} are kept",
        ),
    ],
)
def test_refusals_of_a_registered_customer_say_what_is_wrong(
    command: CustomerCommand, text: str
) -> None:
    assert refusal(command, given(registered())) == text


def test_a_bad_language_tag_is_refused_with_an_example() -> None:
    assert refusal(replace(REGISTER, language="en_US"), None) == (
        "language: must be a language tag such as en, ja or pt-BR"
    )


@pytest.mark.parametrize("language", ["x-a", "en-abcdefgh", "abcdefgh"])
def test_language_subtags_of_one_to_eight_characters_are_accepted(language: str) -> None:
    (event,) = decide(replace(REGISTER, language=language), None)

    assert isinstance(event, CustomerRegistered)
    assert event.language == language


@pytest.mark.parametrize("language", ["en-abcdefghi", "abcdefghi"])
def test_a_language_subtag_of_nine_characters_is_refused(language: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        decide(replace(REGISTER, language=language), None)

    assert refused.value.field == "language"


def test_exactly_the_maximum_of_contact_points_is_accepted() -> None:
    points = tuple(
        ContactPoint(Channel.EMAIL, f"k{i}@example.com") for i in range(MAX_CONTACT_POINTS)
    )

    events = decide(UpdateContactPoints("cust-5", points), given(registered()))

    assert len(events) == 1


def test_a_command_of_another_aggregate_is_refused_naming_its_type() -> None:
    stray = OpenCase("cust-5", "cust-5", Channel.PHONE, Category.CONTRACT, Priority.LOW, "s", "")

    with pytest.raises(InvalidInput) as refused:
        decide(stray, given(registered()))  # type: ignore[arg-type]

    assert refused.value.field == "command"
    assert str(refused.value) == "command: unknown customer command OpenCase"


def test_an_event_of_another_aggregate_is_refused_by_the_fold() -> None:
    stray = CaseOpened(
        "case-1", "cust-5", Channel.PHONE, Category.CONTRACT, Priority.LOW, "", "", "support"
    )

    with pytest.raises(InvariantViolated) as refused:
        evolve(given(registered()), stray, T0)  # type: ignore[arg-type]

    # Its type only: an event's fields may hold personal data, which no message repeats.
    assert str(refused.value) == "unknown customer event CaseOpened"


def test_merging_into_itself_is_refused_word_for_word() -> None:
    state = given(registered())

    with pytest.raises(InvariantViolated) as refused:
        decide_merge(MergeCustomers("cust-5", "cust-5", "merge-1"), state, state)

    assert str(refused.value) == "a customer cannot be merged into itself"


def test_a_survivor_of_merges_cannot_be_merged_away_and_is_told_what_to_do() -> None:
    survivor = given(registered(), DuplicateAbsorbed("cust-5", "cust-dup", "merge-1", ""))

    with pytest.raises(InvariantViolated) as refused:
        decide_merge(
            MergeCustomers("cust-5", "cust-7", "merge-2"), survivor, given(registered("cust-7"))
        )

    assert str(refused.value) == (
        "customer cust-5 has absorbed duplicates itself; "
        "merge the other way round or undo those merges first"
    )


@pytest.mark.parametrize(
    ("command", "field"),
    [
        (MergeCustomers("cust-5", "cust-7", "bad merge id"), "merge_id"),
        (MergeCustomers("cust-5", "cust-7", "merge-1", "r" * 501), "reason"),
    ],
)
def test_a_malformed_merge_names_the_field(command: MergeCustomers, field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        decide_merge(command, given(registered()), given(registered("cust-7")))

    assert refused.value.field == field
