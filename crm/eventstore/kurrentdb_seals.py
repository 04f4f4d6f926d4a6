"""The KurrentDB event store's seals: one event per seal in the store's own `crm-seals` stream.

The stream is outside the global order of events (its prefix is reserved). A seal is appended at
the exact version after the newest seal it continues, so of two sealers racing from one seal the
server keeps only the first (WrongCurrentVersionError, a ConcurrencyConflict).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import kurrentdbclient as kdb
from kurrentdbclient import exceptions as kdb_errors

from crm.errors import ConcurrencyConflict, IntegrityError
from crm.eventstore.kurrentdb_client import KurrentClient
from crm.seals import Seal, SealEntry, decode_entries, encode_entries

SEAL = "crm.seal.v1"


def _events(
    client: KurrentClient, name: str, *, backwards: bool = False, limit: int = sys.maxsize
) -> tuple[kdb.RecordedEvent, ...]:
    try:
        return client.get_stream(name, backwards=backwards, limit=limit)
    except kdb_errors.NotFoundError:
        return ()


def _decoded(event: kdb.RecordedEvent) -> tuple[Seal, bytes]:
    try:
        document: dict[str, Any] = json.loads(event.data)
        return Seal.from_dict(document["seal"]), json.dumps(document["entries"]).encode()
    except (ValueError, KeyError, TypeError) as exc:
        raise IntegrityError(f"seal event {event.id} no longer decodes: {exc}") from None


def save(client: KurrentClient, name: str, seal: Seal, entries: Sequence[SealEntry]) -> None:
    """Append the seal at the version after the newest seal, if it continues that one."""
    newest = _events(client, name, backwards=True, limit=1)
    newest_position = _decoded(newest[0])[0].position if newest else 0
    if newest_position != seal.previous_position:
        raise ConcurrencyConflict(
            f"seal at {seal.position} continues the seal at {seal.previous_position},"
            f" but the newest kept seal is at {newest_position}"
        )
    document = {"seal": seal.to_dict(), "entries": json.loads(encode_entries(entries))}
    event = kdb.NewEvent(type=SEAL, data=json.dumps(document).encode())
    version: int | kdb.StreamState = (
        newest[0].stream_position if newest else kdb.StreamState.NO_STREAM
    )
    client.append_to_stream(name, events=[event], current_version=version)


def read(client: KurrentClient, name: str, after: int, limit: int) -> list[Seal]:
    seals = [_decoded(e)[0] for e in _events(client, name)]
    return [s for s in seals if s.position > after][: max(limit, 0)]


def latest(client: KurrentClient, name: str) -> Seal | None:
    newest = _events(client, name, backwards=True, limit=1)
    return _decoded(newest[0])[0] if newest else None


def entries(client: KurrentClient, name: str, position: int) -> list[SealEntry]:
    for event in _events(client, name):
        seal, stored = _decoded(event)
        if seal.position == position:
            try:
                return decode_entries(stored)
            except ValueError as exc:
                raise IntegrityError(f"seal at {position}: {exc}") from None
    return []
