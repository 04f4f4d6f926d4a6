"""What the view store's readers ask for: queries, pages and page tokens, validated on creation."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime

from crm.errors import InvalidInput
from crm.instants import sortable_instant
from crm.vocabulary import Channel
from projections.timeline import EntryKind, TimelineEntry
from services.case.escalation import EscalationReason

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


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
    def after(self) -> PageCursor | None:
        """The entry the page token points past (None: from the start)."""
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
class FollowUpQuery:
    """The supervisor's follow-up list: resolved cases with negative feedback since."""

    team: str = ""
    limit: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE_SIZE:
            raise InvalidInput("limit", f"must be between 1 and {MAX_PAGE_SIZE}")


@dataclass(frozen=True)
class PageCursor:
    """Where a timeline page ended: the last entry's instant (`sortable_instant`, UTC) and its
    global position, the timeline's sort key (when it happened; ties by position)."""

    occurred_utc: str
    position: int


@dataclass(frozen=True)
class TimelinePage:
    """Entries in the order they happened (occurred_at in UTC, ties by global position;
    descending if asked newest first); "" as token: no more pages."""

    entries: list[TimelineEntry]
    next_page_token: str = ""


def encode_page_token(cursor: PageCursor) -> str:
    """An opaque token for the page after `cursor`; versioned so its form can change (v1 tokens
    held a position alone, from when the timeline was in global order: they are refused)."""
    text = f"v2:{cursor.occurred_utc}|{cursor.position}"
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode_page_token(token: str) -> PageCursor | None:
    """The cursor a token encodes, None for ""; InvalidInput("page_token") for anything else."""
    if not token:
        return None
    refused = InvalidInput("page_token", "is not a token this service issued")
    try:
        text = base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        raise refused from None
    version, _, rest = text.partition(":")
    occurred, _, position = rest.rpartition("|")
    if version != "v2" or not position.isdigit() or int(position) <= 0:
        raise refused
    try:
        canonical = sortable_instant(datetime.fromisoformat(occurred))
    except ValueError:
        raise refused from None
    if canonical != occurred:
        raise refused
    return PageCursor(occurred, int(position))
