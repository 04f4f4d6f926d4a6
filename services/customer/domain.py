"""The customer aggregate: profile, tier, lifecycle facts and merges of duplicate profiles (pure).

A merge touches two customers: the duplicate records that it was merged into the survivor, and
the survivor records that it absorbed the duplicate. Both sides are decided together by
`decide_merge` / `decide_unmerge`; the application appends them one stream after the other.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from crm.errors import AlreadyExists, InvalidInput, InvariantViolated
from crm.validation import MAX_NAME, MAX_SHORT_TEXT, optional_text, require_id, require_text
from services.customer.commands import (
    ChangeTier,
    CustomerCommand,
    ForgetCustomer,
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
    CustomerForgotten,
    CustomerMerged,
    CustomerMergeUndone,
    CustomerRegistered,
    DuplicateAbsorbed,
    DuplicateReleased,
    Lifecycle,
    PurchaseRecorded,
    RenewalRecorded,
    Segment,
    Tier,
    TierChanged,
)

MAX_CONTACT_POINTS = 20
MAX_AMOUNT_MINOR = 10**12

FOLD_VERSION = 2
"""The version of `evolve` and of `Customer`: bump it whenever either changes, so snapshots
folded by the old code are ignored (crm.folding) instead of trusted."""


@dataclass(frozen=True)
class Customer:
    customer_id: str
    name: str
    contact_points: tuple[ContactPoint, ...]
    language: str
    segment: Segment
    company: str
    tier: Tier
    registered_at: datetime
    lifecycle: Lifecycle = Lifecycle.PRE_PURCHASE
    merged_into: str = ""
    merge_id: str = ""
    duplicates: tuple[str, ...] = ()
    forgotten: bool = False
    forgotten_customer_ids: tuple[str, ...] = ()


def evolve(state: Customer | None, event: CustomerEvent, at: datetime) -> Customer:
    """Apply one event to the customer; `at` is when the event occurred."""
    if isinstance(event, CustomerRegistered):
        return Customer(
            customer_id=event.customer_id,
            name=event.name,
            contact_points=event.contact_points,
            language=event.language,
            segment=event.segment,
            company=event.company,
            tier=event.tier,
            registered_at=at,
        )
    if state is None:
        raise InvariantViolated(f"{event.TYPE} cannot precede CustomerRegistered")
    match event:
        case ContactPointsUpdated():
            return replace(state, contact_points=event.contact_points)
        case TierChanged():
            return replace(state, tier=event.to_tier)
        case PurchaseRecorded() | RenewalRecorded():
            return replace(state, lifecycle=Lifecycle.CUSTOMER)
        case CancellationRecorded():
            return replace(state, lifecycle=Lifecycle.CHURNED)
        case CustomerMerged():
            return replace(state, merged_into=event.into_customer_id, merge_id=event.merge_id)
        case DuplicateAbsorbed():
            return replace(state, duplicates=(*state.duplicates, event.duplicate_customer_id))
        case CustomerMergeUndone():
            return replace(state, merged_into="", merge_id="")
        case DuplicateReleased():
            remaining = tuple(d for d in state.duplicates if d != event.duplicate_customer_id)
            return replace(state, duplicates=remaining)
        case CustomerForgotten():
            return replace(
                state, forgotten=True, forgotten_customer_ids=event.forgotten_customer_ids
            )
    raise InvariantViolated(f"unknown customer event {type(event).__name__}")  # no values: personal


# ---------------------------------------------------------------- decisions


def decide(command: CustomerCommand, state: Customer | None) -> list[CustomerEvent]:
    """Check a command against the customer and say what happened, or raise why it cannot."""
    require_id("customer_id", command.customer_id)
    if isinstance(command, RegisterCustomer):
        if state is not None:
            raise AlreadyExists(f"customer {command.customer_id} is registered already")
        return [
            CustomerRegistered(
                customer_id=command.customer_id,
                name=require_text("name", command.name, MAX_NAME),
                contact_points=_contact_points(command.contact_points),
                language=_language(command.language),
                segment=command.segment,
                company=_company(command.segment, command.company),
                tier=command.tier,
            )
        ]
    if state is None:
        raise InvariantViolated(f"customer {command.customer_id} is not registered")
    require_active(state)
    match command:
        case UpdateContactPoints():
            points = _contact_points(command.contact_points)
            if points == state.contact_points:
                raise InvariantViolated("contact_points: unchanged; nothing to record")
            return [ContactPointsUpdated(state.customer_id, points)]
        case ChangeTier():
            if command.tier is state.tier:
                raise InvariantViolated(
                    f"customer {state.customer_id} is {state.tier.value} already"
                )
            reason = optional_text("reason", command.reason, MAX_SHORT_TEXT)
            return [TierChanged(state.customer_id, state.tier, command.tier, reason)]
        case RecordPurchase():
            if not 0 <= command.amount_minor <= MAX_AMOUNT_MINOR:
                raise InvalidInput("amount_minor", f"must be between 0 and {MAX_AMOUNT_MINOR}")
            currency = command.currency
            ascii_letters = currency.isascii() and currency.isalpha()
            if len(currency) != 3 or not ascii_letters or not currency.isupper():
                raise InvalidInput("currency", "must be a three-letter ISO 4217 code such as EUR")
            return [
                PurchaseRecorded(
                    state.customer_id,
                    require_id("order_id", command.order_id),
                    require_text("product", command.product, MAX_NAME),
                    command.amount_minor,
                    currency,
                )
            ]
        case RecordRenewal():
            return [
                RenewalRecorded(
                    state.customer_id,
                    require_id("contract_id", command.contract_id),
                    require_text("product", command.product, MAX_NAME),
                )
            ]
        case RecordCancellation():
            return [
                CancellationRecorded(
                    state.customer_id,
                    require_id("contract_id", command.contract_id),
                    optional_text("reason", command.reason, MAX_SHORT_TEXT),
                )
            ]
    raise InvalidInput("command", f"unknown customer command {type(command).__name__}")


def decide_merge(
    command: MergeCustomers, duplicate: Customer, survivor: Customer
) -> tuple[CustomerMerged, DuplicateAbsorbed]:
    """Merge a duplicate into a survivor: (event for the duplicate, event for the survivor)."""
    if duplicate.customer_id == survivor.customer_id:
        raise InvariantViolated("a customer cannot be merged into itself")
    require_id("merge_id", command.merge_id)
    require_active(duplicate)
    require_active(survivor)
    if duplicate.duplicates:
        raise InvariantViolated(
            f"customer {duplicate.customer_id} has absorbed duplicates itself; "
            "merge the other way round or undo those merges first"
        )
    reason = optional_text("reason", command.reason, MAX_SHORT_TEXT)
    return (
        CustomerMerged(duplicate.customer_id, survivor.customer_id, command.merge_id, reason),
        DuplicateAbsorbed(survivor.customer_id, duplicate.customer_id, command.merge_id, reason),
    )


def decide_unmerge(
    command: UndoMerge, duplicate: Customer, survivor: Customer
) -> tuple[CustomerMergeUndone, DuplicateReleased]:
    """Undo a merge: (event for the duplicate, event for the survivor)."""
    if not duplicate.merged_into:
        raise InvariantViolated(f"customer {duplicate.customer_id} is not merged into another")
    if survivor.customer_id != duplicate.merged_into:
        raise InvariantViolated(
            f"customer {duplicate.customer_id} is not merged into {survivor.customer_id} "
            f"but into {duplicate.merged_into}"
        )
    reason = require_text("reason", command.reason, MAX_SHORT_TEXT)
    return (
        CustomerMergeUndone(
            duplicate.customer_id, survivor.customer_id, duplicate.merge_id, reason
        ),
        DuplicateReleased(survivor.customer_id, duplicate.customer_id, duplicate.merge_id, reason),
    )


def decide_forget(command: ForgetCustomer, state: Customer | None) -> list[CustomerEvent]:
    """Forget a customer and every profile merged into it now (their keys go after this)."""
    require_id("customer_id", command.customer_id)
    if state is None:
        raise InvariantViolated(f"customer {command.customer_id} is not registered")
    if state.forgotten:
        raise InvariantViolated(f"customer {state.customer_id} was forgotten already")
    reason = require_text("reason", command.reason, MAX_SHORT_TEXT)
    ids = (state.customer_id, *state.duplicates)
    return [CustomerForgotten(state.customer_id, reason, ids)]


def require_active(state: Customer) -> None:
    """A merged-away profile takes no more commands: they belong on the survivor."""
    if state.merged_into:
        raise InvariantViolated(
            f"customer {state.customer_id} was merged into {state.merged_into}; use that customer"
        )


def _contact_points(points: tuple[ContactPoint, ...]) -> tuple[ContactPoint, ...]:
    if len(points) > MAX_CONTACT_POINTS:
        raise InvalidInput("contact_points", f"at most {MAX_CONTACT_POINTS} are kept")
    for index, point in enumerate(points):
        require_text(f"contact_points[{index}].address", point.address, MAX_NAME)
    if len(set(points)) != len(points):
        raise InvalidInput("contact_points", "the same channel and address appear twice")
    return points


def _language(language: str) -> str:
    parts = language.split("-")
    if not language or not all(p.isascii() and p.isalnum() and 1 <= len(p) <= 8 for p in parts):
        raise InvalidInput("language", "must be a language tag such as en, ja or pt-BR")
    return language


def _company(segment: Segment, company: str) -> str:
    if segment is Segment.B2B:
        return require_text("company", company, MAX_NAME)
    return optional_text("company", company, MAX_NAME)
