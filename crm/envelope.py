"""The event envelope: what every stored event carries besides its payload, and its hash chain.

Each recorded event hashes its own content together with the hash of the previous event of its
stream, so an auditor can recompute the chain and prove nothing was altered after the fact.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring
from typing import Any

from crm.errors import HistoryBroken
from crm.vocabulary import Actor, ActorKind

GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class EventMetadata:
    """Who did what for whom, when, and as a consequence of what request."""

    customer_id: str
    occurred_at: datetime
    actor: Actor
    correlation_id: str
    causation_id: str
    request_id: str
    command_digest: str = ""
    via: Actor | None = None  # who made the call when it acted for `actor` (a bot, a system)

    def to_dict(self) -> dict[str, str]:
        """The stored (and hashed) form; `via` appears only when set, so events recorded
        before it existed hash exactly as they did."""
        via = {} if self.via is None else {"via_kind": self.via.kind.value, "via_id": self.via.id}
        return {
            "customer_id": self.customer_id,
            "occurred_at": self.occurred_at.isoformat(),
            "actor_kind": self.actor.kind.value,
            "actor_id": self.actor.id,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "request_id": self.request_id,
            "command_digest": self.command_digest,
            **via,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, str]) -> EventMetadata:
        return cls(
            customer_id=raw["customer_id"],
            occurred_at=datetime.fromisoformat(raw["occurred_at"]),
            actor=Actor(ActorKind(raw["actor_kind"]), raw["actor_id"]),
            correlation_id=raw["correlation_id"],
            causation_id=raw["causation_id"],
            request_id=raw["request_id"],
            command_digest=raw.get("command_digest", ""),
            via=Actor(ActorKind(raw["via_kind"]), raw["via_id"]) if "via_kind" in raw else None,
        )


@dataclass(frozen=True)
class NewEvent:
    """An event about to be appended: its id is derived from the request, so retries collide."""

    event_id: str
    type: str
    data: bytes
    metadata: EventMetadata


@dataclass(frozen=True)
class RecordedEvent:
    """An event as the store holds it, with its place in the stream and in the global order."""

    stream: str
    revision: int
    global_position: int
    event_id: str
    type: str
    data: bytes
    metadata: EventMetadata
    recorded_at: datetime
    previous_hash: str
    content_hash: str

    def payload(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.data)
        return decoded


@dataclass(frozen=True)
class StoredAt:
    """Where a stored row sits, to name it when it no longer decodes into an event."""

    stream: str
    revision: int
    global_position: int


def stored_metadata(where: StoredAt, text: str | bytes) -> EventMetadata:
    """The metadata a store kept as JSON text; HistoryBroken naming the event when it no longer
    decodes (altered in place), since its hash cannot even be recomputed then."""
    try:
        return EventMetadata.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as exc:
        problem = f"its stored metadata no longer decodes ({type(exc).__name__}: {exc})"
        raise HistoryBroken(where, problem) from None


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_string: Callable[[str], str] = encode_basestring
"""One JSON string in canonical form (what _CANONICAL writes for a str, without the dispatch)."""


def canonical_json(value: Any) -> bytes:
    """One byte form per value, so hashes do not depend on key order or spacing."""
    return _CANONICAL.encode(value).encode()


def metadata_json(metadata: EventMetadata) -> str:
    """The metadata as stores keep it: the canonical JSON of its dict, byte for byte what the
    content hash covers, so a verifier can hash the stored text without parsing it."""
    return _CANONICAL.encode(metadata.to_dict())


def chain_hash(
    previous_hash: str,
    stream: str,
    revision: int,
    event: NewEvent,
    recorded_at: datetime,
) -> str:
    """The content hash of an event, linked to the previous event of its stream."""
    return content_hash_of_text(
        previous_hash,
        stream,
        revision,
        event.event_id,
        event.type,
        event.data,
        metadata_json(event.metadata),
        recorded_at.isoformat(),
    )


def stored_content_hash(
    previous_hash: str,
    stream: str,
    revision: int,
    event_id: str,
    type_: str,
    data: bytes,
    metadata: dict[str, str],
    recorded_at: str,
) -> str:
    """The content hash from an event's stored parts (metadata as its dict, recorded_at as its
    ISO text): the one rule `chain_hash` applies, usable on raw rows without decoding them."""
    return content_hash_of_text(
        previous_hash,
        stream,
        revision,
        event_id,
        type_,
        data,
        _CANONICAL.encode(metadata),
        recorded_at,
    )


def content_hash_of_text(
    previous_hash: str,
    stream: str,
    revision: int,
    event_id: str,
    type_: str,
    data: bytes,
    metadata_text: str,
    recorded_at: str,
) -> str:
    """The content hash with the metadata given as its canonical JSON text, spliced in as is.

    For metadata text that is not canonical the result is simply a different hash: a verifier
    that finds no match this way must still decode the text (stored_content_hash) before it
    calls the event altered. A match, on the other hand, proves the text is the canonical one
    that was hashed: every other part is a JSON string (which ends at its first unescaped quote)
    or a number, so the spliced bytes cannot equal the recorded ones with the metadata's extent
    shifted (tests/unit/test_envelope_fast.py)."""
    # canonical_json of {"data", "event_id", "metadata", "previous_hash", "recorded_at",
    # "revision", "stream", "type"}, written out in its sorted key order: the same bytes without
    # building and sorting the outer object (verifying the whole store does this per event; a
    # unit test holds it equal to canonical_json of the object).
    text = (
        f'{{"data":"{hashlib.sha256(data).hexdigest()}","event_id":{_string(event_id)},'
        f'"metadata":{metadata_text},"previous_hash":{_string(previous_hash)},'
        f'"recorded_at":{_string(recorded_at)},"revision":{int.__repr__(revision)},'
        f'"stream":{_string(stream)},"type":{_string(type_)}}}'
    )
    return hashlib.sha256(text.encode()).hexdigest()


def verify_chain(events: Iterable[RecordedEvent]) -> int:
    """Recompute the hash chain of one stream's events; returns how many were verified."""
    count = 0

    def counted() -> Iterable[RecordedEvent]:
        nonlocal count
        for event in events:
            count += 1
            yield event

    verify_links(counted(), GENESIS_HASH, 0)
    return count


def verify_links(events: Iterable[RecordedEvent], previous_hash: str, revision: int) -> str:
    """Check that `events` continue a stream whose event before `revision` hashes to
    `previous_hash`: each in its place, linked to the one before, its content unchanged.

    Returns the content hash of the last event (`previous_hash` for none); raises HistoryBroken
    at the first event that breaks the chain.
    """
    expected_previous = previous_hash
    for expected_revision, event in enumerate(events, start=revision):
        if event.revision != expected_revision:
            raise HistoryBroken(event, f"found where revision {expected_revision} belongs")
        if event.previous_hash != expected_previous:
            raise HistoryBroken(event, "its link to the previous event is broken")
        check_content(event)
        expected_previous = event.content_hash
    return expected_previous


def check_content(event: RecordedEvent) -> None:
    """Raise HistoryBroken unless the event's content still hashes to its recorded hash."""
    as_new = NewEvent(event.event_id, event.type, event.data, event.metadata)
    recomputed = chain_hash(
        event.previous_hash, event.stream, event.revision, as_new, event.recorded_at
    )
    if recomputed != event.content_hash:
        raise HistoryBroken(event, "its content was altered after it was recorded")
