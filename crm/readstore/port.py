"""The read store port: views plus each projection's checkpoint, changed together or not at all.

A projection's checkpoint is the global position of the last event it applied. `apply` writes the
views and moves the checkpoint in one transaction and skips events at or below it, so a crash
cannot separate the two and redelivery (at-least-once, from the store or Kafka) changes nothing.
"""

from __future__ import annotations

import base64
import binascii
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from crm.envelope import RecordedEvent
from crm.errors import InvalidInput
from crm.instants import sortable_instant
from crm.notify import ChangeSignal
from crm.vocabulary import Channel
from projections.case_view import CaseView, apply_case_event
from projections.kpi_report import KpiQuery, KpiReport
from projections.kpis import (
    ContactFact,
    PurchaseFact,
    SurveyFact,
    contact_fact,
    purchase_fact,
    survey_fact,
)
from projections.lineage import MergeLink, merge_link
from projections.risk import CustomerRisk, FeedbackSignal, feedback_signal
from projections.timeline import EntryKind, TimelineEntry, timeline_entry
from services.case.escalation import EscalationReason
from services.case.events import EVENT_TYPES as CASE_EVENT_TYPES
from services.events import DomainEvent

VIEWS = "views"
"""The projection that maintains the timeline, the case views and the merge links together."""

PROJECTIONS = frozenset({VIEWS})
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

Batch = Sequence[tuple[RecordedEvent, DomainEvent]]


@dataclass(frozen=True)
class TimelineQuery:
    """One page of a customer's timeline, including profiles merged into that customer.

    `since` is inclusive and `until` exclusive, both on `occurred_at`; empty filters match all.
    """

    customer_id: str
    page_size: int = DEFAULT_PAGE_SIZE
    page_token: str = ""
    newest_first: bool = False
    channels: frozenset[str] = field(default_factory=frozenset)
    kinds: frozenset[str] = field(default_factory=frozenset)
    case_id: str = ""
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if not self.customer_id:
            raise InvalidInput("customer_id", "is required")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise InvalidInput("page_size", f"must be between 1 and {MAX_PAGE_SIZE}")
        unknown = self.channels - {channel.value for channel in Channel}
        if unknown:
            raise InvalidInput("channels", f"unknown channels {sorted(unknown)}")
        unknown = self.kinds - {kind.value for kind in EntryKind}
        if unknown:
            raise InvalidInput("kinds", f"unknown kinds {sorted(unknown)}")
        if (
            self.since is not None
            and self.until is not None
            and sortable_instant(self.since) >= sortable_instant(self.until)
        ):
            raise InvalidInput("until", "must be later than since")
        decode_page_token(self.page_token)

    @property
    def after_position(self) -> int:
        """The global position the page token points past (0: from the start)."""
        return decode_page_token(self.page_token)


@dataclass(frozen=True)
class EscalationQuery:
    """Filters for the list supervisors work from; empty filters match all."""

    min_level: int = 1
    team: str = ""
    reason: str = ""
    escalated_before: datetime | None = None  # only cases escalated at least this long ago
    limit: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.min_level <= 3:
            raise InvalidInput("min_level", "must be between 1 and 3")
        if not 1 <= self.limit <= MAX_PAGE_SIZE:
            raise InvalidInput("limit", f"must be between 1 and {MAX_PAGE_SIZE}")
        if self.reason and self.reason not in {r.value for r in EscalationReason}:
            raise InvalidInput("reason", f"unknown escalation reason {self.reason!r}")


@dataclass(frozen=True)
class TimelinePage:
    """Entries in global order (descending if asked newest first); "" as token: no more pages."""

    entries: list[TimelineEntry]
    next_page_token: str = ""


def encode_page_token(position: int) -> str:
    """An opaque token for the page after `position`; versioned so its form can change."""
    return base64.urlsafe_b64encode(f"v1:{position}".encode()).decode()


def decode_page_token(token: str) -> int:
    """The position a token encodes, 0 for ""; InvalidInput("page_token") for anything else."""
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidInput("page_token", "is not a token this service issued") from None
    version, _, position = text.partition(":")
    if version != "v1" or not position.isdigit() or int(position) <= 0:
        raise InvalidInput("page_token", "is not a token this service issued")
    return int(position)


@dataclass
class ViewChanges:
    """What one batch changes, computed before the adapter writes it in one transaction."""

    entries: list[TimelineEntry] = field(default_factory=list)
    case_views: dict[str, CaseView] = field(default_factory=dict)
    merge_links: dict[str, MergeLink] = field(default_factory=dict)
    feedback_signals: list[FeedbackSignal] = field(default_factory=list)
    contacts: list[ContactFact] = field(default_factory=list)
    surveys: list[SurveyFact] = field(default_factory=list)
    purchases: list[PurchaseFact] = field(default_factory=list)
    position: int = 0


def fold_views(
    batch: Batch, checkpoint: int, load_case_view: Callable[[str], CaseView | None]
) -> ViewChanges:
    """Apply the pure projections to the events after `checkpoint`; adapters persist the result.

    Shared by every adapter so they cannot disagree on what a batch means.
    """
    changes = ViewChanges(position=checkpoint)
    for recorded, event in sorted(batch, key=lambda item: item[0].global_position):
        if recorded.global_position <= changes.position:
            continue
        changes.position = recorded.global_position
        changes.entries.append(timeline_entry(recorded, event))
        if isinstance(event, CASE_EVENT_TYPES):
            view = changes.case_views.get(event.case_id) or load_case_view(event.case_id)
            contact = contact_fact(recorded, event, view)  # with the view as it was before
            if contact is not None:
                changes.contacts.append(contact)
            changes.case_views[event.case_id] = apply_case_event(view, event, recorded)
        link = merge_link(recorded, event)
        if link is not None:
            changes.merge_links[link.duplicate_id] = link
        signal = feedback_signal(recorded, event)
        if signal is not None:
            changes.feedback_signals.append(signal)
        survey = survey_fact(recorded, event)
        if survey is not None:
            changes.surveys.append(survey)
        purchase = purchase_fact(recorded, event)
        if purchase is not None:
            changes.purchases.append(purchase)
    return changes


def require_projection(projection: str) -> None:
    """Refuse projection names no adapter knows, rather than silently tracking a typo."""
    if projection not in PROJECTIONS:
        raise InvalidInput("projection", f"unknown projection {projection!r}")


def checkpoint_key(projection: str, source: str) -> str:
    """Where a projection keeps the position it has applied from one source of events.

    The in-process projector reads the store's global order: one source, "". A Kafka worker reads
    topic partitions: each carries its events in global order, but partitions interleave freely,
    so each partition (source "topic#partition") keeps its own checkpoint. Every view row depends
    on the events of one partition only (all keyed by customer), which keeps this exact.
    """
    require_projection(projection)
    return f"{projection}@{source}" if source else projection


class ReadStore(ABC):
    """Port every read store adapter implements; one conformance suite runs against each."""

    def __init__(self) -> None:
        self._changed = ChangeSignal()

    @abstractmethod
    def checkpoint(self, projection: str, source: str = "") -> int:
        """The global position of the last event `projection` applied from `source`, 0 if none."""

    @abstractmethod
    def apply(self, projection: str, batch: Batch, source: str = "") -> None:
        """Apply the projection to the batch and move its checkpoint, in one transaction.

        Events at or below the checkpoint of `source` are ignored, so applying a batch twice
        changes nothing (see checkpoint_key for what a source is).
        """

    @abstractmethod
    def timeline(self, query: TimelineQuery) -> TimelinePage:
        """One page of a customer's timeline, merged duplicates included."""

    @abstractmethod
    def case_view(self, case_id: str) -> CaseView | None:
        """The case's current view, None if no event of it was applied."""

    @abstractmethod
    def escalated_cases(self, query: EscalationQuery) -> list[CaseView]:
        """Escalated cases, most urgent first: highest level, nearest SLA due, longest escalated."""

    @abstractmethod
    def customer_risk(self, customer_id: str) -> CustomerRisk:
        """Whether the customer is at risk now, and why."""

    @abstractmethod
    def kpis(self, query: KpiQuery) -> KpiReport:
        """Every KPI of the period per group, with the counts behind each ratio."""

    @abstractmethod
    def entries_after(
        self, customer_id: str, after_position: int, limit: int
    ) -> list[TimelineEntry]:
        """Entries of the customer (merged duplicates included) after a position, oldest first."""

    @abstractmethod
    def timeline_watermark(self) -> int:
        """The application sequence of the newest timeline entry (0 for none).

        Entries are numbered in the order they were written, which on the Kafka path is not the
        global order (partitions interleave): a live watch follows this number so an entry that
        lands behind one already sent is still sent.
        """

    @abstractmethod
    def entries_applied_after(
        self, customer_id: str, after_sequence: int, limit: int
    ) -> tuple[list[TimelineEntry], int]:
        """Entries of the customer written after a sequence number, and the last number read."""

    def close(self) -> None:  # noqa: B027 - an optional hook, not every adapter holds resources
        """Release connections; the default holds none."""

    def notify_changed(self) -> None:
        """Wake watchers in this process; runners call it after each applied batch."""
        self._changed.notify()

    def wait_for_change(self, timeout: float) -> None:
        """Block until a change in this process or the timeout (changes by others are polled)."""
        self._changed.wait(timeout)
