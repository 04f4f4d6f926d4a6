"""The content hash with the metadata spliced in as stored text: equal to the canonical hash for
any strings, and a match only where the stored text is the canonical one (so a verifier that
hashes stored text unparsed accepts nothing the decoding rule would refuse)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from crm.envelope import (
    EventMetadata,
    canonical_json,
    content_hash_of_text,
    metadata_json,
    stored_content_hash,
)
from crm.vocabulary import Actor, ActorKind

# Any unicode but lone surrogates (no store can keep them): quotes, backslashes, controls too.
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
tricky = st.one_of(texts, st.sampled_from(['"', "\\", "\x00\x1f", '","metadata":{', "é\u2028"]))
actors = st.builds(Actor, st.sampled_from(list(ActorKind)), tricky)
moments = st.builds(
    lambda seconds, offset: (
        datetime(2026, 1, 1, tzinfo=timezone(timedelta(minutes=offset)))
        + timedelta(seconds=seconds)
    ),
    st.integers(0, 10**8),
    st.integers(-720, 720),
)
metadatas = st.builds(
    EventMetadata,
    customer_id=tricky,
    occurred_at=moments,
    actor=actors,
    correlation_id=tricky,
    causation_id=tricky,
    request_id=tricky,
    command_digest=tricky,
    via=st.one_of(st.none(), actors),
)
parts = st.tuples(
    st.text("0123456789abcdef", min_size=64, max_size=64),
    tricky,
    st.integers(0, 10**9),
    tricky,
    tricky,
    st.binary(max_size=40),
    tricky,
)


def canonical_hash(
    previous: str,
    stream: str,
    revision: int,
    event_id: str,
    type_: str,
    data: bytes,
    metadata: dict[str, str],
    recorded_at: str,
) -> str:
    content = {
        "previous_hash": previous,
        "stream": stream,
        "revision": revision,
        "event_id": event_id,
        "type": type_,
        "data": hashlib.sha256(data).hexdigest(),
        "metadata": metadata,
        "recorded_at": recorded_at,
    }
    return hashlib.sha256(canonical_json(content)).hexdigest()


@settings(max_examples=300, deadline=None)
@given(metadata=metadatas)
def test_stored_metadata_text_is_the_canonical_json_of_its_dict(metadata: EventMetadata) -> None:
    text = metadata_json(metadata)
    assert text.encode() == canonical_json(metadata.to_dict())
    assert json.loads(text) == metadata.to_dict()
    assert text.startswith('{"actor_id":')  # what the verifier's quick pass looks for


@settings(max_examples=300, deadline=None)
@given(parts=parts, metadata=metadatas)
def test_the_spliced_hash_is_the_canonical_one(
    parts: tuple[str, str, int, str, str, bytes, str], metadata: EventMetadata
) -> None:
    previous, stream, revision, event_id, type_, data, at = parts
    expected = canonical_hash(
        previous, stream, revision, event_id, type_, data, metadata.to_dict(), at
    )
    spliced = content_hash_of_text(
        previous, stream, revision, event_id, type_, data, metadata_json(metadata), at
    )
    assert spliced == expected
    assert (
        stored_content_hash(
            previous, stream, revision, event_id, type_, data, metadata.to_dict(), at
        )
        == expected
    )


@settings(max_examples=300, deadline=None)
@given(parts=parts, metadata=metadatas)
def test_metadata_text_in_any_other_spelling_does_not_match_spliced(
    parts: tuple[str, str, int, str, str, bytes, str], metadata: EventMetadata
) -> None:
    # Written the way stores wrote it before (json.dumps: spaces, insertion order): the spliced
    # hash misses, so the verifier decodes the text and applies the exact rule, which holds.
    previous, stream, revision, event_id, type_, data, at = parts
    recorded = canonical_hash(
        previous, stream, revision, event_id, type_, data, metadata.to_dict(), at
    )
    older = json.dumps(metadata.to_dict())
    assert (
        content_hash_of_text(previous, stream, revision, event_id, type_, data, older, at)
        != recorded
    )
    assert (
        stored_content_hash(
            previous, stream, revision, event_id, type_, data, json.loads(older), at
        )
        == recorded
    )


@settings(max_examples=300, deadline=None)
@given(parts=parts, metadata=metadatas, cut=st.integers(1, 30))
def test_text_shifted_between_metadata_and_a_neighbour_never_matches(
    parts: tuple[str, str, int, str, str, bytes, str], metadata: EventMetadata, cut: int
) -> None:
    # A forger moving characters between the metadata text and the event id or the time cannot
    # keep the spliced bytes equal: the neighbours are JSON strings, escaped, ending at a quote.
    previous, stream, revision, event_id, type_, data, at = parts
    text = metadata_json(metadata)
    recorded = content_hash_of_text(previous, stream, revision, event_id, type_, data, text, at)
    head, rest = text[:cut], text[cut:]
    assert (
        content_hash_of_text(previous, stream, revision, event_id + head, type_, data, rest, at)
        != recorded
    )
    assert (
        content_hash_of_text(
            previous, stream, revision, event_id, type_, data, text[:-cut], text[-cut:] + at
        )
        != recorded
    )
