"""The recorded history of a customer or a case: which streams it spans, read from the event store.

Streams come from the source of truth where it names them (a customer's own stream, and through
its DuplicateAbsorbed events every profile ever merged into it); the cases and feedback of a
profile are found through the timeline projection, whose entries are filed under the profile and
carry the case id and the global position of their event. Every stream found is then read whole
from the event store, so the history holds what the store holds, not what a view shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from crm.envelope import RecordedEvent
from crm.errors import HistoryBroken, IntegrityError, InvalidInput, NotFound
from crm.eventcodec import EventCodec
from crm.eventstore.port import EventStore
from crm.validation import require_id
from projections.store.port import ViewStore
from projections.timeline import EntryKind, TimelineEntry
from services.audit.lineage import MERGE_TYPES, Membership, membership_end, narrower, within
from services.customer.events import DuplicateAbsorbed
from services.events import DomainEvent

ENTRY_BATCH = 500


@dataclass(frozen=True)
class Subject:
    """Whose history: a customer (with every profile merged into it) or one case."""

    kind: str  # "customer" or "case"
    id: str

    def __post_init__(self) -> None:
        if self.kind not in ("customer", "case"):
            raise InvalidInput("subject", "give a customer_id or a case_id")
        require_id(f"subject.{self.kind}_id", self.id)


class HistoryReader:
    """Finds a subject's streams and reads them, merged into one global order (blocking)."""

    def __init__(self, store: EventStore, views: ViewStore, codec: EventCodec) -> None:
        self._store = store
        self._views = views
        self._codec = codec

    def events(self, subject: Subject) -> list[RecordedEvent]:
        """Every event of the subject's history, in global order; NotFound for an unknown one."""
        streams = self.streams(subject)
        merged = [
            event
            for stream, until in streams.items()
            for event in self._store.read_stream(stream)
            if within(event.global_position, until)
        ]
        return sorted(merged, key=lambda event: event.global_position)

    def streams(self, subject: Subject) -> dict[str, int | None]:
        """Each stream of the history, with the position its share ends at (None: no end)."""
        if subject.kind == "case":
            return self._case_streams(subject.id)
        own = f"customer-{subject.id}"
        if not self._store.read_stream(own, limit=1):
            raise NotFound(f"customer {subject.id} has no history")
        streams: dict[str, int | None] = {}
        for member in self.members(subject.id):
            for stream in self._profile_streams(member):
                streams[stream] = _later(streams.get(stream, 0), member.until)
        return streams

    def members(self, customer_id: str) -> list[Membership]:
        """The customer and every profile ever merged into it (through chains too)."""
        found = {customer_id: Membership(customer_id, None)}
        pending = [found[customer_id]]
        while pending:
            survivor = pending.pop()
            for recorded in self._own_events(survivor):
                event = self._decoded(recorded)
                if not isinstance(event, DuplicateAbsorbed):
                    continue
                duplicate = event.duplicate_customer_id
                if duplicate in found:
                    continue
                ever, until = membership_end(self._merge_facts(duplicate), survivor.customer_id)
                if ever:
                    found[duplicate] = Membership(duplicate, narrower(survivor.until, until))
                    pending.append(found[duplicate])
        return list(found.values())

    def _own_events(self, member: Membership) -> list[RecordedEvent]:
        events = self._readable(f"customer-{member.customer_id}")
        return [e for e in events if within(e.global_position, member.until)]

    def _merge_facts(self, customer_id: str) -> Iterator[tuple[RecordedEvent, DomainEvent]]:
        for recorded in self._readable(f"customer-{customer_id}"):
            if self._is_merge_fact(recorded) and (event := self._decoded(recorded)) is not None:
                yield recorded, event

    def _is_merge_fact(self, recorded: RecordedEvent) -> bool:
        """Whether the membership rule reads the event, stored as whichever version of its type."""
        try:
            return self._codec.current_type(recorded.type) in MERGE_TYPES
        except IntegrityError:  # a type no release knows: the history's description says so
            return False

    def _readable(self, stream: str) -> list[RecordedEvent]:
        """The stream's events for finding members; none when a row no longer decodes (the
        stream is still listed, and verifying it names the row)."""
        try:
            return self._store.read_stream(stream)
        except HistoryBroken:
            return []

    def _decoded(self, recorded: RecordedEvent) -> DomainEvent | None:
        """The event, or None for one that no longer decodes (VerifyHistory says why)."""
        try:
            event: DomainEvent = self._codec.decode(recorded.type, recorded.data)
        except (IntegrityError, ValueError, TypeError, KeyError):
            return None
        return event

    def _profile_streams(self, member: Membership) -> set[str]:
        """The profile's own stream, its cases' and its feedback's, within its membership."""
        streams = {f"customer-{member.customer_id}"}
        for entry in self._entries(member.customer_id):
            if not within(entry.global_position, member.until):
                continue
            if entry.kind is EntryKind.FEEDBACK:
                streams.add(self._stream_at(entry))
            elif entry.case_id:
                streams.add(f"case-{entry.case_id}")
        return streams

    def _case_streams(self, case_id: str) -> dict[str, int | None]:
        stream = f"case-{case_id}"
        first = self._store.read_stream(stream, limit=1)
        if not first:
            raise NotFound(f"case {case_id} has no history")
        streams: dict[str, int | None] = {stream: None}
        for entry in self._entries(first[0].metadata.customer_id):
            if entry.kind is EntryKind.FEEDBACK and entry.case_id == case_id:
                streams[self._stream_at(entry)] = None
        return streams

    def _entries(self, customer_id: str) -> Iterator[TimelineEntry]:
        """The timeline entries filed under this profile itself (not its merged members)."""
        after = 0
        while entries := self._views.entries_after(customer_id, after, ENTRY_BATCH):
            yield from (e for e in entries if e.customer_id == customer_id)
            after = entries[-1].global_position

    def _stream_at(self, entry: TimelineEntry) -> str:
        """The stream of the event a timeline entry shows (feedback ids are not on the entry)."""
        found = self._store.read_all(after=entry.global_position - 1, limit=1)
        if not found or found[0].event_id != entry.event_id:
            raise IntegrityError(
                f"the timeline shows event {entry.event_id} at global position"
                f" {entry.global_position}, which the event store does not hold there"
            )
        return found[0].stream


def _later(current: int | None, until: int | None) -> int | None:
    """Of two shares of one stream, the one reaching further (None reaches furthest)."""
    if current is None or until is None:
        return None
    return max(current, until)
