"""What callers may ask of a customer: the customer service's commands."""

from __future__ import annotations

from dataclasses import dataclass

from services.customer.events import ContactPoint, Segment, Tier


@dataclass(frozen=True)
class RegisterCustomer:
    customer_id: str
    name: str
    contact_points: tuple[ContactPoint, ...]
    language: str
    segment: Segment
    company: str = ""
    tier: Tier = Tier.STANDARD


@dataclass(frozen=True)
class UpdateContactPoints:
    customer_id: str
    contact_points: tuple[ContactPoint, ...]


@dataclass(frozen=True)
class ChangeTier:
    customer_id: str
    tier: Tier
    reason: str = ""


@dataclass(frozen=True)
class RecordPurchase:
    customer_id: str
    order_id: str
    product: str
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class RecordRenewal:
    customer_id: str
    contract_id: str
    product: str


@dataclass(frozen=True)
class RecordCancellation:
    customer_id: str
    contract_id: str
    reason: str = ""


CustomerCommand = (
    RegisterCustomer
    | UpdateContactPoints
    | ChangeTier
    | RecordPurchase
    | RecordRenewal
    | RecordCancellation
)


@dataclass(frozen=True)
class MergeCustomers:
    duplicate_customer_id: str
    survivor_customer_id: str
    merge_id: str
    reason: str = ""


@dataclass(frozen=True)
class UndoMerge:
    duplicate_customer_id: str
    reason: str


@dataclass(frozen=True)
class ForgetCustomer:
    """Delete the customer's data keys (and those of profiles merged into it) for good."""

    customer_id: str
    reason: str
