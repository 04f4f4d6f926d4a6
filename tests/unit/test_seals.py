"""The seal core: the global chain's formula, the fast forms equal to the canonical ones, and
signatures that hold only for the exact seal and key."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm.envelope import GENESIS_HASH, canonical_json, stored_content_hash
from crm.seals import (
    Seal,
    SealEntry,
    SealKey,
    SealVerifier,
    chain_head,
    decode_entries,
    encode_entries,
    link,
)

KEY = SealKey.generate()
texts = st.text(max_size=30)
positions = st.integers(0, 2**53)
hashes = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
entries = st.builds(SealEntry, positions, texts, st.integers(0, 10**9), hashes)


@settings(max_examples=200, deadline=None)
@given(head=hashes, entry=entries)
def test_a_link_is_sha256_of_the_canonical_array(head: str, entry: SealEntry) -> None:
    expected = hashlib.sha256(
        canonical_json(
            [head, entry.global_position, entry.stream, entry.revision, entry.content_hash]
        )
    ).hexdigest()
    assert link(head, *entry) == expected


@settings(max_examples=200, deadline=None)
@given(
    parts=st.tuples(hashes, texts, st.integers(0, 10**9), texts, texts, st.binary(), texts),
    metadata=st.dictionaries(texts, st.one_of(texts, st.integers(), st.none()), max_size=9),
)
def test_the_content_hash_from_stored_parts_is_the_canonical_one(
    parts: tuple[str, str, int, str, str, bytes, str], metadata: dict[str, Any]
) -> None:
    previous, stream, revision, event_id, type_, data, recorded_at = parts
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
    expected = hashlib.sha256(canonical_json(content)).hexdigest()
    assert (
        stored_content_hash(
            previous, stream, revision, event_id, type_, data, metadata, recorded_at
        )
        == expected
    )


@settings(max_examples=50, deadline=None)
@given(first=st.lists(entries, max_size=5), second=st.lists(entries, max_size=5))
def test_the_chain_continues_from_a_head(first: list[SealEntry], second: list[SealEntry]) -> None:
    assert chain_head(first + second) == chain_head(second, chain_head(first))
    assert chain_head([]) == GENESIS_HASH


def test_any_reordering_or_removal_changes_the_head() -> None:
    a, b, c = (SealEntry(n, f"s-{n}", 0, str(n) * 64) for n in range(1, 4))
    head = chain_head([a, b, c])
    assert chain_head([b, a, c]) != head
    assert chain_head([a, c]) != head
    assert chain_head([a, b]) != head
    assert chain_head([a, b, c._replace(content_hash="f" * 64)]) != head


def _seal() -> Seal:
    return KEY.sign(Seal(7, 7, "a" * 64, 0, "2026-11-26T20:00:00+00:00", ""))


def test_a_signed_seal_verifies_with_its_public_key_only() -> None:
    seal = _seal()
    assert seal.key_id == KEY.key_id and KEY.public.problem(seal) == ""
    published = SealVerifier.from_pem(KEY.public.public_pem().encode())
    assert published.problem(seal) == ""
    other = SealKey.generate().public
    assert "names key" in other.problem(seal)


@pytest.mark.parametrize(
    "change",
    [
        {"position": 8},
        {"count": 6},
        {"head": "b" * 64},
        {"previous_position": 1},
        {"sealed_at": "2026-11-26T20:00:01+00:00"},
        {"signature": "00" * 64},
        {"signature": "not hex"},
    ],
)
def test_a_seal_changed_in_any_field_no_longer_verifies(change: dict[str, Any]) -> None:
    assert "signature does not match" in KEY.public.problem(replace(_seal(), **change))


def test_a_kept_seal_round_trips_and_a_malformed_one_is_refused() -> None:
    seal = _seal()
    assert Seal.from_dict(seal.to_dict()) == seal
    assert SealKey.from_pem(KEY.private_pem()).key_id == KEY.key_id
    with pytest.raises(ValueError, match="not a seal"):
        Seal.from_dict({"position": 1})
    with pytest.raises(ValueError, match="out of range"):
        Seal.from_dict({**seal.to_dict(), "head": "short"})


def test_entries_round_trip_and_refuse_the_wrong_kinds() -> None:
    kept = [SealEntry(1, "case-1", 0, "a" * 64), SealEntry(3, "case-2", 5, "b" * 64)]
    assert decode_entries(encode_entries(kept)) == kept
    for stored in (b"[[1, 2, 3]]", b'[["1", "s", 0, "h"]]', b"not json", b"[[1, 2, 0, 3]]"):
        with pytest.raises(ValueError, match="no longer decode"):
            decode_entries(stored)
