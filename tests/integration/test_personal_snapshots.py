"""Snapshots and cached states under the field cipher: sealed at rest, and no longer trusted once
their customer is forgotten, in this process at once and in another after its key cache expires."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crm.command_handling import CommandContext, StreamHandler
from crm.eventcodec import EventCodec
from crm.eventstore.sqlite import SqliteEventStore
from crm.personal.cipher import BLOB_PREFIX, PLACEHOLDER, PersonalData
from crm.personal.keys import MasterKey
from crm.personal.sqlite_keys import SqliteKeyStore
from crm.vocabulary import Actor, ActorKind, Channel
from services.customer import domain
from services.customer.application import CUSTOMER_FOLD
from services.customer.commands import RegisterCustomer, UpdateContactPoints
from services.customer.domain import Customer
from services.customer.events import ContactPoint, CustomerEvent, Segment
from services.events import EVENT_TYPES

DIGEST_KEY = bytes(range(32))
NAME = "Aiko Snapshot-Tanaka"
_requests = itertools.count(1)


@dataclass
class Process:
    """One process's view: its own cipher (and key cache) and its own state cache."""

    personal: PersonalData
    customers: StreamHandler[Customer, CustomerEvent]


@dataclass
class Stores:
    events: SqliteEventStore
    keys: SqliteKeyStore

    def process(self, now: list[float] | None = None) -> Process:
        clock = now or [0.0]
        personal = PersonalData(self.keys, digest_key=DIGEST_KEY, monotonic=lambda: clock[0])
        handler: StreamHandler[Customer, CustomerEvent] = StreamHandler(
            self.events,
            EventCodec(EVENT_TYPES, personal=personal),
            "customer",
            CUSTOMER_FOLD,
            lambda: datetime.now(UTC),
            snapshot_every=2,
        )
        return Process(personal, handler)


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Stores]:
    events = SqliteEventStore(tmp_path / "events.db")
    keys = SqliteKeyStore(tmp_path / "keys.db", MasterKey(bytes(32)))
    yield Stores(events, keys)
    keys.close()
    events.close()


def run(process: Process, command: RegisterCustomer | UpdateContactPoints) -> None:
    context = CommandContext(
        f"snap-{next(_requests)}", Actor(ActorKind.SYSTEM, "shop"), datetime.now(UTC)
    )
    process.customers.execute(
        command.customer_id,
        context,
        command,
        lambda state: domain.decide(command, state),
        lambda _state, _events: command.customer_id,
        must_exist=not isinstance(command, RegisterCustomer),
    )


def history(process: Process) -> None:
    """A customer whose stream is long enough to be snapshotted."""
    run(process, RegisterCustomer("c-1", NAME, (), "ja", Segment.B2C))
    for n in range(4):
        point = ContactPoint(Channel.EMAIL, f"aiko{n}@example.jp")
        run(process, UpdateContactPoints("c-1", (point,)))


def test_a_snapshot_is_sealed_and_reads_back_in_a_new_process(stores: Stores) -> None:
    history(stores.process())
    snapshot = stores.events.read_snapshot("customer-c-1")
    assert snapshot is not None and snapshot.revision >= 2
    assert snapshot.state.startswith(BLOB_PREFIX) and NAME.encode() not in snapshot.state
    state = stores.process().customers.load("c-1").state
    assert state is not None and state.name == NAME


def test_a_forget_drops_this_process_s_cached_state_at_once(stores: Stores) -> None:
    process = stores.process()
    history(process)
    assert process.customers.load("c-1").state.name == NAME  # type: ignore[union-attr]
    process.personal.forget("c-1")
    state = process.customers.load("c-1").state
    assert state is not None and state.name == PLACEHOLDER
    assert [p.address for p in state.contact_points] == [PLACEHOLDER]


def test_another_process_drops_its_cached_state_at_its_next_load(stores: Stores) -> None:
    writer = stores.process()
    history(writer)
    reader = stores.process()  # its clock stands still: no cache expires
    assert reader.customers.load("c-1").state.name == NAME  # type: ignore[union-attr]
    writer.personal.forget("c-1")
    state = reader.customers.load("c-1").state
    assert state is not None and state.name == PLACEHOLDER


def test_a_forgotten_customer_s_snapshot_is_folded_around_and_never_resaved_in_the_clear(
    stores: Stores,
) -> None:
    history(stores.process())
    stores.process().personal.forget("c-1")
    later = stores.process()
    loaded = later.customers.load("c-1")
    assert loaded.state is not None and loaded.state.name == PLACEHOLDER
    assert loaded.revision == 4
    snapshot = stores.events.read_snapshot("customer-c-1")
    assert snapshot is not None and snapshot.state.startswith(BLOB_PREFIX)
    assert PLACEHOLDER.encode() not in snapshot.state
