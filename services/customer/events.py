"""What can happen to a customer: the customer stream's events and the values they carry."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

from crm.vocabulary import Channel


class Segment(Enum):
    B2C = "b2c"
    B2B = "b2b"


class Tier(Enum):
    STANDARD = "standard"
    LOYAL = "loyal"
    VIP = "vip"


class Lifecycle(Enum):
    PRE_PURCHASE = "pre_purchase"
    CUSTOMER = "customer"
    CHURNED = "churned"


@dataclass(frozen=True)
class ContactPoint:
    """How to reach the customer on one channel (an address, a number, a handle)."""

    channel: Channel
    address: str


@dataclass(frozen=True)
class CustomerRegistered:
    TYPE: ClassVar[str] = "crm.customer.CustomerRegistered.v1"
    customer_id: str
    name: str
    contact_points: tuple[ContactPoint, ...]
    language: str
    segment: Segment
    company: str
    tier: Tier


@dataclass(frozen=True)
class ContactPointsUpdated:
    TYPE: ClassVar[str] = "crm.customer.ContactPointsUpdated.v1"
    customer_id: str
    contact_points: tuple[ContactPoint, ...]


@dataclass(frozen=True)
class TierChanged:
    TYPE: ClassVar[str] = "crm.customer.TierChanged.v1"
    customer_id: str
    from_tier: Tier
    to_tier: Tier
    reason: str


@dataclass(frozen=True)
class PurchaseRecorded:
    TYPE: ClassVar[str] = "crm.customer.PurchaseRecorded.v1"
    customer_id: str
    order_id: str
    product: str
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class RenewalRecorded:
    TYPE: ClassVar[str] = "crm.customer.RenewalRecorded.v1"
    customer_id: str
    contract_id: str
    product: str


@dataclass(frozen=True)
class CancellationRecorded:
    TYPE: ClassVar[str] = "crm.customer.CancellationRecorded.v1"
    customer_id: str
    contract_id: str
    reason: str


@dataclass(frozen=True)
class CustomerMerged:
    """On the duplicate's stream: this profile now lives on in `into_customer_id`."""

    TYPE: ClassVar[str] = "crm.customer.CustomerMerged.v1"
    customer_id: str
    into_customer_id: str
    merge_id: str
    reason: str


@dataclass(frozen=True)
class DuplicateAbsorbed:
    """On the survivor's stream: the duplicate's history now shows on this customer's timeline."""

    TYPE: ClassVar[str] = "crm.customer.DuplicateAbsorbed.v1"
    customer_id: str
    duplicate_customer_id: str
    merge_id: str
    reason: str


@dataclass(frozen=True)
class CustomerMergeUndone:
    TYPE: ClassVar[str] = "crm.customer.CustomerMergeUndone.v1"
    customer_id: str
    from_customer_id: str
    merge_id: str
    reason: str


@dataclass(frozen=True)
class CustomerForgotten:
    """The customer's data keys (and those of profiles merged into it) were deleted."""

    TYPE: ClassVar[str] = "crm.customer.CustomerForgotten.v1"
    customer_id: str
    reason: str
    forgotten_customer_ids: tuple[str, ...]


@dataclass(frozen=True)
class DuplicateReleased:
    TYPE: ClassVar[str] = "crm.customer.DuplicateReleased.v1"
    customer_id: str
    duplicate_customer_id: str
    merge_id: str
    reason: str


CustomerEvent = (
    CustomerRegistered
    | ContactPointsUpdated
    | TierChanged
    | PurchaseRecorded
    | RenewalRecorded
    | CancellationRecorded
    | CustomerMerged
    | DuplicateAbsorbed
    | CustomerMergeUndone
    | DuplicateReleased
    | CustomerForgotten
)
EVENT_TYPES: tuple[type[CustomerEvent], ...] = (
    CustomerRegistered,
    ContactPointsUpdated,
    TierChanged,
    PurchaseRecorded,
    RenewalRecorded,
    CancellationRecorded,
    CustomerMerged,
    DuplicateAbsorbed,
    CustomerMergeUndone,
    DuplicateReleased,
    CustomerForgotten,
)
