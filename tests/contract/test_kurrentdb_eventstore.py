"""The KurrentDB adapter against the shared event store contract, on a real server.

It runs only when CRM_KURRENTDB_URL names a KurrentDB / EventStoreDB server (22.10 or newer), for
example `CRM_KURRENTDB_URL='kurrentdb://localhost:2113?tls=false' make test`; otherwise it is
skipped with that reason printed. Each test gets a namespace of its own (a fresh prefix on every
stream name), so the server need not be empty and runs leave each other alone. The large-payload
test appends over 2 MiB at once: start the server with a MaxAppendSize above that (4 MiB, say).
"""

from __future__ import annotations

import os
import uuid

import pytest

from crm.eventstore.kurrentdb import KurrentDBEventStore, open_kurrentdb
from crm.eventstore.port import EventStore, StreamState
from tests.contract.eventstore_contract import EventStoreContract, new_events

URL = os.environ.get("CRM_KURRENTDB_URL", "")

if not URL:
    # One skip for the whole module, reported (with -ra, as `make test` runs) from this file.
    pytest.skip(
        "CRM_KURRENTDB_URL is not set, so there is no KurrentDB server to run the conformance"
        " suite against; run it with CRM_KURRENTDB_URL='kurrentdb://[user:password@]host:2113"
        "[?tls=false]' make test",
        allow_module_level=True,
    )


def open_store() -> KurrentDBEventStore:
    return open_kurrentdb(URL, "CRM_KURRENTDB_URL", namespace=f"t{uuid.uuid4().hex}_")


class TestKurrentDBEventStore(EventStoreContract):
    dense_positions = False  # commit positions of the server's log: increasing, with gaps

    def make_store(self) -> EventStore:
        return open_store()


def test_every_event_of_one_append_has_a_position_of_its_own() -> None:
    """The adapter's global order rests on it (kurrentdb_mapping); the suite above would also
    trip over it, this says which assumption broke."""
    store = open_store()
    try:
        result = store.append("Case-1", new_events(5), StreamState.NO_STREAM)
        recorded = store.read_stream("Case-1")
        positions = [e.global_position for e in recorded]
        assert len(set(positions)) == 5
        assert positions == sorted(positions)
        assert result.global_position == positions[-1]
        assert [e.global_position for e in store.read_all()] == positions
    finally:
        store.close()
