"""The quick pass of whole-store verification: proves an untouched store at speed, or gives up.

An untouched store is the common case, and proving it needs less than naming a break: each
stream's chain and each event's content hash, the global chain recomputed over the events and
equal, seal by seal, to the signed heads, and the entries kept with each seal equal, byte for
byte, to the entries the events themselves make (so the exact walk would find them proven and
the events matching them one for one). That needs no decoding of the entries and, for metadata
written in canonical form, no parsing of the metadata either.

At the first thing that does not hold the pass gives up (None) and the exact walk
(services.audit.store_verify) runs from the start to name what is wrong: a tampered store is
read twice, an untouched one once. The pass returns a verdict only where the exact walk would
find nothing, so the two can never disagree about a store.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from hashlib import sha256 as _sha256
from json.encoder import encode_basestring, encode_basestring_ascii

from crm.envelope import GENESIS_HASH, stored_content_hash
from crm.errors import IntegrityError
from crm.eventstore.port import EventStore
from crm.seals import Seal, SealVerifier

CANONICAL_START = '{"actor_id":'
"""How metadata written as canonical JSON begins (its first key in sorted order); older rows
(json.dumps in insertion order) begin otherwise and go straight to the decoding path."""


@dataclass(frozen=True)
class Clean:
    """What the quick pass counted in a store where it found nothing wrong."""

    events_checked: int
    streams_checked: int
    sealed_events: int


class _GiveUp(Exception):
    """Something does not hold: the exact walk must look."""


def quick_pass(
    store: EventStore, key: SealVerifier | None, target: Seal | None, batch: int
) -> Clean | None:
    """The store proven untouched up to `target` (each stream's chain after it), or None."""
    try:
        return _pass(store, _Seals(store, key, target), target, batch)
    except (_GiveUp, IntegrityError, TypeError, ValueError):  # a value of the wrong kind too
        return None


def _pass(store: EventStore, seals: _Seals, target: Seal | None, batch: int) -> Clean:
    sealed_up_to = target.position if target else 0
    seal = seals.next()
    streams: dict[str, tuple[int, str]] = {}
    found: list[str] = []  # the sealed entries the events make, each without its leading "["
    count, head, after, checked = 0, GENESIS_HASH, 0, 0
    loads, exact, sha256 = json.loads, stored_content_hash, _sha256
    string, ascii_string = encode_basestring, encode_basestring_ascii
    start, add = (0, GENESIS_HASH), found.append
    seal_at = seal.position if seal else 0
    while True:
        rows = store.read_chain(after, batch)
        for position, stream, revision, event_id, type_, data, meta, at, prev, content in rows:
            if (revision, prev) != streams.get(stream, start):
                raise _GiveUp
            # crm.envelope.content_hash_of_text written out (a test holds them equal): prev is
            # a content hash just recomputed (or the genesis hash), so hex, needing no escaping.
            quoted = string(stream)
            spliced = (
                meta[:12] == CANONICAL_START  # written canonically: hashed as stored, no parse
                and sha256(
                    f'{{"data":"{sha256(data).hexdigest()}","event_id":{string(event_id)},'
                    f'"metadata":{meta},"previous_hash":"{prev}",'
                    f'"recorded_at":{string(at)},"revision":{revision},'
                    f'"stream":{quoted},"type":{string(type_)}}}'.encode()
                ).hexdigest()
                == content
            )
            # older rows, and any that does not match: decoded, the one exact rule
            if (
                not spliced
                and exact(prev, stream, revision, event_id, type_, data, loads(meta), at) != content
            ):
                raise _GiveUp
            streams[stream] = (revision + 1, content)
            if position > sealed_up_to:
                continue
            if position > seal_at:
                raise _GiveUp  # no event where the seal ends: removed, or moved
            # crm.seals.link written out (a test holds them equal): the content hash was just
            # recomputed and the head is one too, so both are hex and need no JSON escaping.
            tail = f'{position},{quoted},{revision},"{content}"]'
            head = sha256(f'["{head}",{tail}'.encode()).hexdigest()
            # encode_entries writes the same array, in ASCII (json.dumps' default).
            if not tail.isascii():
                tail = f'{position},{ascii_string(stream)},{revision},"{content}"]'
            add(tail)
            if position == seal_at and seal is not None:
                count += len(found)
                if count != seal.count or head != seal.head:
                    raise _GiveUp
                if store.seal_entries_bytes(position) != f"[[{',['.join(found)}]".encode():
                    raise _GiveUp
                found.clear()
                seal = seals.next()
                seal_at = seal.position if seal else 0
        checked += len(rows)
        if len(rows) < batch:
            break
        after = rows[-1][0]
    if seal is not None or seals.last != target:
        raise _GiveUp
    return Clean(checked, len(streams), count)  # every sealed event is counted in a seal


class _Seals:
    """The kept seals up to the target, in order, each given out only once its signature holds
    and it continues the one before it."""

    def __init__(self, store: EventStore, key: SealVerifier | None, target: Seal | None) -> None:
        self._store = store
        self._key = key
        self._kept: Iterator[Seal] = self._read(target.position) if target else iter(())
        self.last: Seal | None = None

    def next(self) -> Seal | None:
        seal = next(self._kept, None)
        if seal is None:
            return None
        if self._key is not None and self._key.problem(seal):
            raise _GiveUp
        if seal.previous_position != (self.last.position if self.last else 0):
            raise _GiveUp
        self.last = seal
        return seal

    def _read(self, up_to: int) -> Iterator[Seal]:
        after = 0
        while True:
            page = [s for s in self._store.read_seals(after, 100) if s.position <= up_to]
            yield from page
            if len(page) < 100:
                return
            after = page[-1].position
