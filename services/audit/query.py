"""GetHistory's filters and its page tokens, validated on creation (pure).

A page token holds the global position the previous page ended at and a fingerprint of the query
that made it, so the same token always resumes at the same place, and a token handed to another
query (another subject or other filters) is refused instead of silently skipping events.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from crm.envelope import RecordedEvent, canonical_json
from crm.errors import InvalidInput
from crm.instants import sortable_instant
from crm.vocabulary import ActorKind
from services.audit.history import Subject

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 500
TOKEN_VERSION = 1


@dataclass(frozen=True)
class HistoryQuery:
    """One page of a subject's history; empty filters match all, `since` inclusive, `until`
    exclusive, compared with the recorded time unless `by_occurred` says otherwise."""

    subject: Subject
    since: datetime | None = None
    until: datetime | None = None
    by_occurred: bool = False
    event_types: frozenset[str] = field(default_factory=frozenset)
    actor_ids: frozenset[str] = field(default_factory=frozenset)
    actor_kinds: frozenset[ActorKind] = field(default_factory=frozenset)
    page_size: int = DEFAULT_PAGE_SIZE
    page_token: str = ""
    known_types: frozenset[str] = field(default_factory=frozenset, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise InvalidInput("page_size", f"must be between 1 and {MAX_PAGE_SIZE} (0: 100)")
        unknown = self.event_types - self.known_types
        if unknown:
            raise InvalidInput("event_types", f"unknown event types {sorted(unknown)[:5]}")
        if (
            self.since is not None
            and self.until is not None
            and sortable_instant(self.since) >= sortable_instant(self.until)
        ):
            raise InvalidInput("until", "must be later than since")
        self.after  # noqa: B018  (a bad token is refused when the query is made)

    @property
    def fingerprint(self) -> str:
        """What makes two queries the same, short: subject and filters, not the page size."""
        described = {
            "subject": [self.subject.kind, self.subject.id],
            "since": None if self.since is None else sortable_instant(self.since),
            "until": None if self.until is None else sortable_instant(self.until),
            "by_occurred": self.by_occurred,
            "event_types": sorted(self.event_types),
            "actor_ids": sorted(self.actor_ids),
            "actor_kinds": sorted(kind.value for kind in self.actor_kinds),
        }
        return hashlib.sha256(canonical_json(described)).hexdigest()[:32]

    @property
    def after(self) -> int:
        """The global position the page token resumes after (0: from the start)."""
        if not self.page_token:
            return 0
        try:
            raw = json.loads(base64.urlsafe_b64decode(self.page_token.encode("ascii")))
            version, fingerprint, after = raw["v"], raw["q"], raw["after"]
        except (ValueError, TypeError, KeyError, binascii.Error, UnicodeError):
            raise InvalidInput("page_token", "is not a token this API issued") from None
        if version != TOKEN_VERSION or not isinstance(after, int) or after < 0:
            raise InvalidInput("page_token", "is not a token this API issued")
        if fingerprint != self.fingerprint:
            raise InvalidInput("page_token", "belongs to another query (subject or filters differ)")
        return after

    def token_after(self, position: int) -> str:
        """The token of the page that starts after `position`."""
        raw = canonical_json({"v": TOKEN_VERSION, "q": self.fingerprint, "after": position})
        return base64.urlsafe_b64encode(raw).decode("ascii")

    def matches(self, event: RecordedEvent) -> bool:
        """Whether the event passes every filter."""
        meta = event.metadata
        if self.event_types and event.type not in self.event_types:
            return False
        if self.actor_ids and meta.actor.id not in self.actor_ids:
            return False
        if self.actor_kinds and meta.actor.kind not in self.actor_kinds:
            return False
        at = sortable_instant(meta.occurred_at if self.by_occurred else event.recorded_at)
        if self.since is not None and at < sortable_instant(self.since):
            return False
        return self.until is None or at < sortable_instant(self.until)


@dataclass(frozen=True)
class HistoryPage:
    """A page of events in global order and the token of the next (empty on the last)."""

    events: list[RecordedEvent]
    next_page_token: str


def page_of(query: HistoryQuery, events: Iterable[RecordedEvent]) -> HistoryPage:
    """The query's page of a history given in global order."""
    after = query.after
    chosen: list[RecordedEvent] = []
    for event in events:
        if event.global_position <= after or not query.matches(event):
            continue
        if len(chosen) == query.page_size:
            return HistoryPage(chosen, query.token_after(chosen[-1].global_position))
        chosen.append(event)
    return HistoryPage(chosen, "")
