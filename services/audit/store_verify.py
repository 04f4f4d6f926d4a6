"""Verification of the whole store against a seal: every stream's chain and the global order.

An untouched store is proven by the quick pass (services.audit.store_quick); only when that finds
something that does not hold does the exact walk below run, from the start, to name it.

The exact walk: one pass over the global order, in batches of undecoded rows
(EventStore.read_chain), checks for each event: its place in its stream (revision), its link to
the previous event of the stream, its content hash, and, up to the seal, that it is the event the
seal's entries name at its global position.

The seal's entries are used only once they are proven, seal by seal: its signature, its
continuity with the seal before it and its entries chaining to its signed head (crm.seals). Events
that match proven entries one for one chain to the same heads, so the global chain is not
recomputed over them. With them a removed, inserted or moved event is named exactly; where they
end early (the store's seals were altered as well, or the target is not a kept seal) the chain is
recomputed from the last proven seal and compared with the signed heads after it, which places
a break between the last seal that still matches and the next.
Events after the seal have only their per-stream chains to vouch for them: a forger who appends
well-formed events there is not caught until a seal covers them and an auditor keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from crm.envelope import GENESIS_HASH, content_hash_of_text, stored_content_hash
from crm.errors import IntegrityError
from crm.eventstore.port import EventStore
from crm.seals import Seal, SealEntry, SealVerifier, chain_head, link
from services.audit.store_quick import CANONICAL_START, quick_pass
from services.audit.verify import Break

BATCH = 5000


@dataclass
class StoreVerification:
    """What a whole-store verification found; `breaks` is sorted, the first break first."""

    seal: Seal | None
    events_checked: int = 0
    streams_checked: int = 0
    sealed_events: int = 0  # events of the global order up to the seal's position, as found
    events_after_seal: int = 0  # checked by their per-stream chains only
    head: str = ""  # the global chain's head recomputed at the seal's position
    exact: bool = True  # whether the seal's entries could be used to name breaks exactly
    breaks: list[Break] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks


class StoreVerifier:
    """Checks the whole store against a seal (the newest kept one, or one an auditor kept)."""

    def __init__(self, store: EventStore, key: SealVerifier | None, batch: int = BATCH) -> None:
        self._store = store
        self._key = key
        self._batch = batch

    def verify(self, given: Seal | None = None) -> StoreVerification:
        """Verify everything; against `given` if an auditor supplied it, else the newest seal."""
        target = given if given is not None else self._store.latest_seal()
        result = StoreVerification(seal=target)
        breaks: list[Break] = []
        if target is not None:
            breaks += self._seal_problems(target, given is not None)
        if not breaks and (clean := quick_pass(self._store, self._key, target, self._batch)):
            result.events_checked = clean.events_checked
            result.streams_checked = clean.streams_checked
            result.sealed_events = clean.sealed_events
            result.events_after_seal = clean.events_checked - clean.sealed_events
            result.head = target.head if target else ""
            return result  # exact, no breaks: what the exact walk would find, found sooner
        ledger = _Ledger(self._store, self._key, target)
        breaks += _walk(self._store, ledger, target, self._batch, result)
        breaks.sort(key=lambda b: b.global_position)
        result.breaks = breaks
        return result

    def _seal_problems(self, target: Seal, given: bool) -> list[Break]:
        problems: list[Break] = []
        at = target.position
        if self._key is not None and (problem := self._key.problem(target)):
            problems.append(Break("", 0, at, f"the seal at global position {at}: {problem}"))
        if given:
            kept = self._store.read_seals(after=at - 1, limit=1)
            if not kept or kept[0].position != at:
                problems.append(Break("", 0, at, f"the store keeps no seal at {at}: removed"))
            elif kept[0] != target:
                problems.append(
                    Break("", 0, at, f"the store's seal at {at} differs from the one given")
                )
        return problems


class _Ledger:
    """The sealed entries, seal by seal, each seal proven before any of its entries is given
    out: signed by the seal key, continuing the seal before it, and its entries chaining to its
    head. Stops at the first seal that is not proven (`failed` says why) or at the target."""

    def __init__(self, store: EventStore, key: SealVerifier | None, target: Seal | None) -> None:
        self._store = store
        self._key = key
        self._target = target
        self.failed: Break | None = None
        self.last: Seal | None = None  # the last seal proven
        self.unproven: list[Seal] = []  # kept seals after the failure, signatures checked
        self._seals: Iterator[Seal] = self._kept(target.position) if target else iter(())
        self._batch: Iterator[SealEntry] = iter(())
        self.done = target is None

    @property
    def reached_target(self) -> bool:
        return self._target is not None and self.last == self._target

    def resume(self) -> tuple[int, str]:
        """The count and head the global chain stands at after the last proven seal."""
        return (self.last.count, self.last.head) if self.last else (0, GENESIS_HASH)

    def next(self) -> SealEntry | None:
        entry = next(self._batch, None)
        while entry is None and not self.done:
            self._prove_next()
            entry = next(self._batch, None)
        return entry

    def _prove_next(self) -> None:
        seal = next(self._seals, None)
        if seal is None:
            self.done = True
            return
        entries, why = self._prove(seal)
        if why:
            self.failed = Break(
                "", 0, seal.position, f"the store's seal at {seal.position} cannot be used: {why}"
            )
            self.done = True
            self.unproven = [s for s in [seal, *self._seals] if self._signed(s)]
            return
        self.last = seal
        self._batch = iter(entries)

    def _signed(self, seal: Seal) -> bool:
        return self._key is None or not self._key.problem(seal)

    def _prove(self, seal: Seal) -> tuple[list[SealEntry], str]:
        previous = self.last
        if self._key is not None and (problem := self._key.problem(seal)):
            return [], problem
        expected_previous = previous.position if previous else 0
        if seal.previous_position != expected_previous:
            return [], f"it continues the seal at {seal.previous_position}, not {expected_previous}"
        try:
            entries = self._store.seal_entries(seal.position)
        except IntegrityError as exc:
            return [], str(exc)
        count, head = self.resume()
        if not entries or entries[-1].global_position != seal.position:
            return [], "its entries do not end at its position"
        if count + len(entries) != seal.count:
            return [], "its entries do not add up to its count"
        try:
            proven = chain_head(entries, head) == seal.head
        except TypeError:  # an entry of the wrong kind: not what the sealer wrote
            proven = False
        if not proven:
            return [], "its entries do not chain to its head"
        return entries, ""

    def _kept(self, up_to: int) -> Iterator[Seal]:
        after = 0
        while True:
            page = [s for s in self._store.read_seals(after, 100) if s.position <= up_to]
            yield from page
            if len(page) < 100:
                return
            after = page[-1].position


def _walk(
    store: EventStore, ledger: _Ledger, target: Seal | None, batch: int, result: StoreVerification
) -> list[Break]:
    """One pass over the global order: each stream's first break, the first departure from
    the proven entries, and, where no proven entries vouch, the global chain recomputed and
    compared with the signed heads of the seals (the first one it misses)."""
    sealed_up_to = target.position if target else 0
    pending = ledger.next()
    departure: Break | None = None
    linking = pending is None and not ledger.reached_target  # no proven entries to compare
    count, head = ledger.resume()
    marks = _marks(ledger, target) if linking else []
    mark_index, last_good = 0, ledger.last.position if ledger.last else 0
    seal_breaks: list[Break] = []
    streams: dict[str, tuple[int, str]] = {}
    broken: dict[str, Break] = {}
    after, checked, sealed = 0, 0, 0
    loads, spliced = json.loads, content_hash_of_text
    while True:
        rows = store.read_chain(after, batch)
        for position, stream, revision, event_id, type_, data, meta, at, prev, content in rows:
            checked += 1
            expected_revision, last_hash = streams.get(stream, (0, GENESIS_HASH))
            problem = ""
            if revision != expected_revision:
                problem = f"found where revision {expected_revision} belongs"
            elif prev != last_hash:
                problem = "its link to the previous event is broken"
            elif not (
                meta[:12] == CANONICAL_START  # written canonically: hashed as stored, no parse
                and spliced(prev, stream, revision, event_id, type_, data, meta, at) == content
            ):
                try:  # older rows, and any that does not match: decoded, the one exact rule
                    recomputed = stored_content_hash(
                        prev, stream, revision, event_id, type_, data, loads(meta), at
                    )
                except (ValueError, TypeError) as exc:
                    problem = f"its stored metadata no longer decodes ({exc})"
                else:
                    if recomputed != content:
                        problem = "its content was altered after it was recorded"
            if problem and stream not in broken:
                broken[stream] = Break(stream, revision, position, problem)
            streams[stream] = (revision + 1, content)
            if position > sealed_up_to:
                continue
            sealed += 1
            if linking:
                while mark_index < len(marks) and marks[mark_index].position < position:
                    last_good = _checkpoint(marks[mark_index], count, head, last_good, seal_breaks)
                    mark_index += 1
                count += 1
                head = link(head, position, stream, revision, content)
            elif departure is None and pending is not None:
                if pending.global_position < position:
                    departure = _missing(pending)
                else:
                    departure = _compare(pending, position, stream, revision, content)
                    if pending.global_position == position:
                        pending = ledger.next()
                        if pending is None and not ledger.reached_target:
                            linking = True  # the proven entries end here: the chain takes over
                            count, head = ledger.resume()
                            marks = _marks(ledger, target)
        if len(rows) < batch:
            break
        after = rows[-1][0]
    if departure is None and pending is not None:
        departure = _missing(pending)
    if not linking and pending is None and not ledger.reached_target:
        count, head = ledger.resume()  # entries ended with the events: compare what is left
        marks = _marks(ledger, target)
        linking = True
    if linking:
        for mark in marks[mark_index:]:
            last_good = _checkpoint(mark, count, head, last_good, seal_breaks)
    result.events_checked = checked
    result.streams_checked = len(streams)
    result.sealed_events = sealed
    result.events_after_seal = checked - sealed
    result.exact = target is None or ledger.reached_target
    result.head = "" if target is None or departure else (head if linking else target.head)
    breaks = list(broken.values())
    if ledger.failed is not None:
        breaks.append(ledger.failed)
    if departure is not None:
        breaks.append(departure)
    elif seal_breaks:
        breaks.append(seal_breaks[0])  # no proven entries there: the interval is all we know
    return breaks


def _marks(ledger: _Ledger, target: Seal | None) -> list[Seal]:
    """The signed heads the recomputed chain is compared with, after the last proven seal."""
    if target is None:
        return []
    return [*(s for s in ledger.unproven if s.position < target.position), target]


def _checkpoint(seal: Seal, count: int, head: str, last_good: int, found: list[Break]) -> int:
    """Compare the chain at a seal's position; returns the position of the last seal matched."""
    if count == seal.count and head == seal.head:
        return seal.position
    if not found:
        found.append(
            Break(
                "",
                0,
                seal.position,
                f"the global order up to {seal.position} no longer chains to the seal's head"
                f" ({count} events found, {seal.count} sealed): events were removed, inserted"
                f" or reordered after global position {last_good}, the last seal that matches",
            )
        )
    return last_good


def _missing(entry: SealEntry) -> Break:
    return Break(
        entry.stream,
        entry.revision,
        entry.global_position,
        "missing: the seal has this event here, the store no longer holds it",
    )


def _compare(
    entry: SealEntry, position: int, stream: str, revision: int, content: str
) -> Break | None:
    """The departure of the event found at `position` from the sealed entry expected next."""
    if entry.global_position > position:
        return Break(stream, revision, position, "inserted: the seal has no event here")
    if (entry.stream, entry.revision) != (stream, revision):
        return Break(
            stream,
            revision,
            position,
            f"not the event sealed here: the seal has {entry.stream} revision {entry.revision}",
        )
    if entry.content_hash != content:
        return Break(
            stream, revision, position, "rehashed after it was sealed: its content hash changed"
        )
    return None
