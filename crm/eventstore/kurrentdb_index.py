"""The KurrentDB store's request index: bindings in streams of their own, checked against events.

KurrentDB cannot write two streams in one transaction, so the index cannot be written "with" the
append. Instead an append first *binds* its event ids in the index stream of each request id it
carries (`crm-request-<id>`; an event without a request id gets `crm-event-<event id>`), with an
exact expected revision of that stream, so two appends under one request id take turns. Then it
appends the events at an exact revision of their own stream. A binding says where the events will
be; whether they are is read from that stream, never assumed:

- recorded: the stream holds the binding's events at its revision: the append happened;
- void: the stream holds other events there (or the binding was released after the append was
  refused): the append can never happen;
- pending: the stream has not reached that revision yet: the append is in flight, or its writer
  died between binding and appending.

Only recorded bindings are reported by `find_request`, so the index never shows an append that did
not happen, and shows one that did as soon as it did (its binding came first). A pending binding
still holds its request id for its command and its event ids for its stream and revision: an
append that would break either is refused rather than risk a second copy landing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import kurrentdbclient as kdb

from crm.envelope import NewEvent, RecordedEvent
from crm.errors import ConcurrencyConflict, IntegrityError
from crm.eventstore.kurrentdb_mapping import StreamNames
from crm.eventstore.port import AppendResult, RequestRecord

BOUND = "crm.index.Bound.v1"
RELEASED = "crm.index.Released.v1"


@dataclass(frozen=True)
class Binding:
    """One append's claim, kept in an index stream: these events go to `stream` at that revision."""

    index_stream: str  # the server name of the index stream that holds it
    entry: int  # its revision in that stream, which a release names
    stream: str
    request_id: str
    digest: str
    event_ids: tuple[str, ...]  # the whole append's, in order
    first_revision: int


class State(Enum):
    """What a binding's stream says about it (see the module's docstring)."""

    RECORDED = "recorded"
    VOID = "void"
    PENDING = "pending"


@dataclass(frozen=True)
class Resolved:
    """A binding and what its stream says about it; the recorded events when it happened."""

    binding: Binding
    state: State
    events: tuple[RecordedEvent, ...] = ()


Reader = Callable[[str, int, int], list[RecordedEvent]]  # stream, from revision, count


def keys(names: StreamNames, events: Sequence[NewEvent]) -> dict[str, str]:
    """The index streams an append binds in, each with the request id it stands for ("" if none)."""
    found: dict[str, str] = {}
    for event in events:
        request_id = event.metadata.request_id
        key = names.request(request_id) if request_id else names.event_key(event.event_id)
        found.setdefault(key, request_id)
    return found


def bound_event(
    stream: str, request_id: str, digest: str, event_ids: Sequence[str], first_revision: int
) -> kdb.NewEvent:
    """The index entry that binds an append before it is made."""
    data = {
        "stream": stream,
        "request_id": request_id,
        "digest": digest,
        "event_ids": list(event_ids),
        "first_revision": first_revision,
    }
    return kdb.NewEvent(type=BOUND, data=json.dumps(data).encode())


def released_event(entry: int) -> kdb.NewEvent:
    """The index entry that voids a binding whose append the server refused."""
    return kdb.NewEvent(type=RELEASED, data=json.dumps({"entry": entry}).encode())


def bindings(index_stream: str, recorded: Iterable[kdb.RecordedEvent]) -> list[Binding]:
    """The bindings of an index stream that were not released, in the order they were made."""
    found: dict[int, Binding] = {}
    for event in recorded:
        data = _json(event)
        if event.type == BOUND:
            found[event.stream_position] = Binding(
                index_stream,
                event.stream_position,
                str(data["stream"]),
                str(data["request_id"]),
                str(data["digest"]),
                tuple(str(i) for i in data["event_ids"]),
                int(data["first_revision"]),
            )
        elif event.type == RELEASED:
            found.pop(int(data["entry"]), None)
    return list(found.values())


def resolve(binding: Binding, read: Reader) -> Resolved:
    """Whether the binding's events are in its stream at its revision, elsewhere, or not yet."""
    there = read(binding.stream, binding.first_revision, len(binding.event_ids))
    if not there:
        return Resolved(binding, State.PENDING)
    if tuple(e.event_id for e in there) == binding.event_ids:
        return Resolved(binding, State.RECORDED, tuple(there))
    return Resolved(binding, State.VOID)


def check(
    stream: str,
    events: Sequence[NewEvent],
    first_revision: int,
    known: Sequence[Binding],
    read: Reader,
) -> AppendResult | None:
    """Before binding an append: its original result if it happened already, None if it may go
    ahead; ConcurrencyConflict if it overlaps another append or its request id names another
    command."""
    ids = tuple(e.event_id for e in events)
    wanted = set(ids)
    digests: dict[str, str] = {}
    for event in events:
        request_id, digest = event.metadata.request_id, event.metadata.command_digest
        if request_id and digests.setdefault(request_id, digest) != digest:
            raise ConcurrencyConflict(
                f"stream {stream}: request {request_id} names two commands in one append"
            )
    blocking: list[str] = []
    for binding in known:
        overlaps = not wanted.isdisjoint(binding.event_ids)
        other_command = bool(binding.request_id) and binding.digest != digests.get(
            binding.request_id, binding.digest
        )
        if not (overlaps or other_command):
            continue  # the common case: nothing to read
        resolved = resolve(binding, read)
        if resolved.state is State.VOID:
            continue
        if other_command:
            raise ConcurrencyConflict(
                f"stream {stream}: request {binding.request_id} was recorded for another command"
            )
        same_append = binding.stream == stream and binding.event_ids == ids
        if resolved.state is State.RECORDED and same_append:
            last = resolved.events[-1]
            return AppendResult(stream, last.revision, last.global_position)
        if (
            resolved.state is State.PENDING
            and binding.stream == stream
            and binding.first_revision == first_revision
        ):
            continue  # both go to the same exact revision: the server lets one land, never two
        state = resolved.state.value
        blocking.append(f"{state} in stream {binding.stream} at revision {binding.first_revision}")
    if blocking:
        raise ConcurrencyConflict(
            f"stream {stream}: some of these event ids belong to another append ("
            + "; ".join(blocking)
            + "); a retry must resend the original append unchanged"
        )
    return None


def records(request_id: str, known: Sequence[Binding], read: Reader) -> list[RequestRecord]:
    """What the request appended, one record per stream, from its recorded bindings only.

    The request's events are told by the request id they carry, so a binding of an append that
    mixed requests reports only this request's events.
    """
    per_stream: dict[str, RequestRecord] = {}
    for binding in known:
        resolved = resolve(binding, read)
        if resolved.state is not State.RECORDED:
            continue
        mine = [e for e in resolved.events if e.metadata.request_id == request_id]
        if not mine:
            continue
        earlier = per_stream.get(binding.stream)
        seen = earlier.event_ids if earlier else ()
        fresh = tuple(e.event_id for e in mine if e.event_id not in seen)
        if not fresh:
            continue  # a retry that bound the same append twice
        per_stream[binding.stream] = RequestRecord(
            request_id,
            binding.digest,
            binding.stream,
            seen + fresh,
            mine[-1].revision,
            mine[-1].global_position,
        )
    return sorted(per_stream.values(), key=lambda r: r.global_position)


def _json(event: kdb.RecordedEvent) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(event.data)
    except ValueError as exc:
        raise IntegrityError(f"{event.stream_name}@{event.stream_position}: {exc}") from exc
    return data
