"""Command handling on the KurrentDB adapter (over the in-memory stand-in for the server): the
request index's bindings serve retries, merges cut off between streams, and store-wide request
ids as the SQLite store's transactions do."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from crm.command_handling import CommandContext
from crm.envelope import verify_chain
from crm.errors import InvalidInput, OperationalError
from crm.eventstore.kurrentdb import KurrentDBEventStore
from crm.vocabulary import Actor, ActorKind, Channel, Priority
from services.bootstrap import build_applications
from services.case.commands import AddNote, OpenCase
from services.case.events import Category
from services.customer.commands import MergeCustomers, RegisterCustomer
from services.customer.events import Segment
from tests.kurrentdb_fake import FakeKurrentDB

NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
AGENT = Actor(ActorKind.AGENT, "agent-3")


def context(request_id: str) -> CommandContext:
    return CommandContext(request_id=request_id, actor=AGENT, occurred_at=NOW)


def register(customer_id: str) -> RegisterCustomer:
    return RegisterCustomer(customer_id, "Emi Kato", (), "ja", Segment.B2C)


def open_case(case_id: str, customer_id: str = "c-1") -> OpenCase:
    return OpenCase(
        case_id, customer_id, Channel.EMAIL, Category.CONTRACT, Priority.LOW, "Renewal", ""
    )


@pytest.fixture
def server() -> FakeKurrentDB:
    return FakeKurrentDB()


@pytest.fixture
def store(server: FakeKurrentDB) -> Iterator[KurrentDBEventStore]:
    store = KurrentDBEventStore(server)
    try:
        yield store
    finally:
        store.close()


def test_a_repeated_command_returns_its_first_outcome(store: KurrentDBEventStore) -> None:
    apps = build_applications(store, lambda: NOW)
    apps.customers.handle(register("c-1"), context("reg"))
    first = apps.cases.handle(open_case("case-1"), context("open"))
    apps.cases.handle(AddNote("case-1", "n-1", "called back"), context("note"))
    before = store.last_position()
    again = apps.cases.handle(open_case("case-1"), context("open"))
    assert again.duplicate_request
    assert (again.revision, again.global_position, again.event_ids) == (
        first.revision,
        first.global_position,
        first.event_ids,
    )
    assert store.last_position() == before


def test_a_merge_cut_off_between_its_streams_is_completed_by_the_retry(
    server: FakeKurrentDB, store: KurrentDBEventStore
) -> None:
    app = build_applications(store, lambda: NOW).customers
    app.handle(register("dup"), context("reg-dup"))
    app.handle(register("survivor"), context("reg-survivor"))
    merge = MergeCustomers("dup", "survivor", "merge-1", "same phone number")
    # The survivor's binding is written, then the connection drops before its events are.
    server.unavailable_for.add(store.names.server("customer-survivor"))
    with pytest.raises(OperationalError):
        app.merge(merge, context("merge-req"))
    assert [r.stream for r in store.find_request("merge-req")] == ["customer-dup"]
    server.unavailable_for.clear()

    outcome = app.merge(merge, context("merge-req"))
    assert not outcome.duplicate_request
    survivor = app.get("survivor").state
    assert survivor is not None and survivor.duplicates == ("dup",)
    repeat = app.merge(merge, context("merge-req"))
    assert repeat.duplicate_request and repeat.event_ids == outcome.event_ids
    assert [r.stream for r in store.find_request("merge-req")] == [
        "customer-dup",
        "customer-survivor",
    ]
    for stream in ("customer-dup", "customer-survivor"):
        assert verify_chain(store.read_stream(stream)) == 2


def test_a_request_id_used_for_one_command_is_refused_for_another(
    store: KurrentDBEventStore,
) -> None:
    apps = build_applications(store, lambda: NOW)
    apps.customers.handle(register("c-1"), context("reg"))
    apps.cases.handle(open_case("case-1"), context("open-1"))
    apps.cases.handle(open_case("case-2"), context("open-2"))
    before = store.last_position()
    with pytest.raises(InvalidInput, match="different command") as refused:
        apps.cases.handle(AddNote("case-2", "note-1", "called back"), context("open-1"))
    assert refused.value.field == "context.request_id"
    assert store.last_position() == before


def test_two_stores_writing_one_case_take_turns_through_the_server(
    server: FakeKurrentDB, store: KurrentDBEventStore
) -> None:
    """Two processes' stores: their per-stream queues do not see each other, so the server's
    exact revisions decide, and command handling decides again after a lost race."""
    other = KurrentDBEventStore(server, watch=False)
    apps = [build_applications(s, lambda: NOW) for s in (store, other)]
    apps[0].customers.handle(register("c-1"), context("reg"))
    apps[0].cases.handle(open_case("case-1"), context("open"))
    errors: list[BaseException] = []

    def work(side: int) -> None:
        try:
            for n in range(10):
                note = AddNote("case-1", f"note-{side}-{n}", "busy")
                apps[side].cases.handle(note, context(f"note-{side}-{n}"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(side,), daemon=True) for side in (0, 1)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    try:
        assert errors == []
        recorded = store.read_stream("case-case-1")
        assert len(recorded) == 21
        assert verify_chain(recorded) == 21
        assert len({e.event_id for e in recorded}) == 21
    finally:
        other.close()
