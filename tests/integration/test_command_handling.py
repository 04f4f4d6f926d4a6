"""Command handling on a real SQLite store: bounded retries; merges that survive a crash; request
ids unique store-wide; commands on one stream queue instead of colliding."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crm.command_handling import MAX_ATTEMPTS, CommandContext
from crm.envelope import EventMetadata, NewEvent, verify_chain
from crm.errors import ConcurrencyConflict, InvalidInput, InvariantViolated, OperationalError
from crm.eventstore.port import AppendResult, ExpectedRevision, StreamState
from crm.eventstore.sqlite import SqliteEventStore
from crm.vocabulary import Actor, ActorKind, Channel, Direction, Priority
from services.bootstrap import CODEC, build_applications
from services.case.commands import AddNote, OpenCase, RecordContact
from services.case.events import CaseNoteAdded, Category, ContactOutcome
from services.customer import domain as customer_domain
from services.customer.application import CustomerApplication
from services.customer.commands import ChangeTier, MergeCustomers, RegisterCustomer, UndoMerge
from services.customer.events import Segment, Tier

NOW = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
AGENT = Actor(ActorKind.AGENT, "agent-3")


def context(request_id: str) -> CommandContext:
    return CommandContext(request_id=request_id, actor=AGENT, occurred_at=NOW)


class FlakyStore(SqliteEventStore):
    """A real store whose appends to chosen streams fail a number of times first."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.failures: dict[str, tuple[int, Exception]] = {}
        self.attempts: dict[str, int] = {}

    def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedRevision
    ) -> AppendResult:
        self.attempts[stream] = self.attempts.get(stream, 0) + 1
        remaining, error = self.failures.get(stream, (0, OperationalError("unused")))
        if remaining > 0:
            self.failures[stream] = (remaining - 1, error)
            raise error
        return super().append(stream, events, expected)


def state_of(app: CustomerApplication, customer_id: str) -> customer_domain.Customer:
    state = app.get(customer_id).state
    assert state is not None
    return state


def register(app: CustomerApplication, customer_id: str) -> None:
    command = RegisterCustomer(customer_id, "Emi Kato", (), "ja", Segment.B2C)
    app.handle(command, context(f"register-{customer_id}"))


def test_conflicts_are_retried_then_reported_after_the_bound(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "events.db")
    app = build_applications(store, lambda: NOW).customers
    register(app, "c-1")
    store.failures["customer-c-1"] = (MAX_ATTEMPTS - 1, ConcurrencyConflict("raced"))
    app.handle(ChangeTier("c-1", Tier.VIP), context("tier-1"))
    assert state_of(app, "c-1").tier is Tier.VIP

    store.failures["customer-c-1"] = (MAX_ATTEMPTS, ConcurrencyConflict("raced"))
    before = store.last_position()
    with pytest.raises(ConcurrencyConflict, match="retry"):
        app.handle(ChangeTier("c-1", Tier.LOYAL), context("tier-2"))
    assert store.last_position() == before
    store.close()


def test_merge_interrupted_between_streams_is_completed_by_the_retry(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "events.db")
    app = build_applications(store, lambda: NOW).customers
    register(app, "dup")
    register(app, "survivor")
    merge = MergeCustomers("dup", "survivor", "merge-1", "same phone number")
    store.failures["customer-survivor"] = (1, OperationalError("disk went away"))
    with pytest.raises(OperationalError):
        app.merge(merge, context("merge-req"))
    assert state_of(app, "dup").merged_into == "survivor"
    assert state_of(app, "survivor").duplicates == ()

    outcome = app.merge(merge, context("merge-req"))
    assert not outcome.duplicate_request
    assert state_of(app, "survivor").duplicates == ("dup",)
    repeat = app.merge(merge, context("merge-req"))
    assert repeat.duplicate_request and repeat.event_ids == outcome.event_ids
    assert len(store.read_stream("customer-dup")) == 2
    assert len(store.read_stream("customer-survivor")) == 2
    store.close()


def test_undo_merge_interrupted_between_streams_is_completed_by_the_retry(tmp_path: Path) -> None:
    store = FlakyStore(tmp_path / "events.db")
    app = build_applications(store, lambda: NOW).customers
    register(app, "dup")
    register(app, "survivor")
    app.merge(MergeCustomers("dup", "survivor", "m-1"), context("merge"))
    undo = UndoMerge("dup", "different people after all")
    store.failures["customer-survivor"] = (1, OperationalError("disk went away"))
    with pytest.raises(OperationalError):
        app.undo_merge(undo, context("undo"))
    app.undo_merge(undo, context("undo"))
    assert (state_of(app, "dup").merged_into, state_of(app, "survivor").duplicates) == ("", ())
    assert len(store.read_stream("customer-survivor")) == 3
    store.close()


def test_case_for_a_merged_away_customer_is_refused_naming_the_survivor(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    customers_app = build_applications(store, lambda: NOW).customers
    register(customers_app, "dup")
    register(customers_app, "survivor")
    customers_app.merge(MergeCustomers("dup", "survivor", "m-1"), context("merge"))
    open_case = OpenCase(
        "case-1", "dup", Channel.EMAIL, Category.CONTRACT, Priority.LOW, "Renewal", ""
    )
    with pytest.raises(InvariantViolated, match="survivor"):
        build_applications(store, lambda: NOW).cases.handle(open_case, context("open"))
    store.close()


def open_case(case_id: str, customer_id: str = "c-1") -> OpenCase:
    return OpenCase(
        case_id, customer_id, Channel.EMAIL, Category.CONTRACT, Priority.LOW, "Renewal", ""
    )


def test_a_request_id_used_to_open_a_case_is_refused_for_a_note_on_another(
    tmp_path: Path,
) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    apps = build_applications(store, lambda: NOW)
    register(apps.customers, "c-1")
    apps.cases.handle(open_case("case-1"), context("open-1"))
    apps.cases.handle(open_case("case-2"), context("open-2"))
    before = store.last_position()
    with pytest.raises(InvalidInput, match="different command") as refused:
        apps.cases.handle(AddNote("case-2", "note-1", "called back"), context("open-1"))
    assert refused.value.field == "context.request_id"
    assert store.last_position() == before
    repeat = apps.cases.handle(open_case("case-1"), context("open-1"))
    assert repeat.duplicate_request and store.last_position() == before
    store.close()


def test_an_older_event_store_file_keeps_its_idempotency(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    store = SqliteEventStore(path)
    apps = build_applications(store, lambda: NOW)
    register(apps.customers, "c-1")
    opened = apps.cases.handle(open_case("case-1"), context("open-1"))
    store.close()
    with sqlite3.connect(path) as raw:  # the file as the code before the request index left it
        raw.execute("DROP TABLE request_index")
        raw.execute("DROP TABLE snapshots")
        raw.execute("PRAGMA user_version = 0")

    store = SqliteEventStore(path)
    apps = build_applications(store, lambda: NOW)
    before = store.last_position()
    repeat = apps.cases.handle(open_case("case-1"), context("open-1"))
    assert repeat.duplicate_request and repeat.event_ids == opened.event_ids
    with pytest.raises(InvalidInput, match="different command"):
        apps.cases.handle(AddNote("case-1", "note-1", "called back"), context("open-1"))
    assert store.last_position() == before
    store.close()


class CountingConflicts(SqliteEventStore):
    """A real store that counts the conflicts its appends raise."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.conflicts = 0

    def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedRevision
    ) -> AppendResult:
        try:
            return super().append(stream, events, expected)
        except ConcurrencyConflict:
            self.conflicts += 1
            raise


def test_sixteen_threads_on_one_case_queue_instead_of_colliding(tmp_path: Path) -> None:
    store = CountingConflicts(tmp_path / "events.db")
    apps = build_applications(store, lambda: NOW)
    register(apps.customers, "c-1")
    apps.cases.handle(open_case("case-1"), context("open"))
    threads, per_thread = 16, 5
    barrier = threading.Barrier(threads, timeout=30)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            barrier.wait()
            for n in range(per_thread):
                note = AddNote("case-1", f"note-{t}-{n}", "busy")
                apps.cases.handle(note, context(f"note-{t}-{n}"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not any(worker.is_alive() for worker in workers)
    assert errors == []
    assert store.conflicts == 0
    recorded = store.read_stream("case-case-1")
    assert [e.revision for e in recorded] == list(range(1 + threads * per_thread))
    notes = [e.metadata.request_id for e in recorded[1:]]
    assert sorted(notes) == sorted(
        f"note-{t}-{n}" for t in range(threads) for n in range(per_thread)
    )
    assert verify_chain(recorded) == len(recorded)
    case = apps.cases.get("case-1").state
    assert case is not None and case.note_count == threads * per_thread
    store.close()


def test_two_processes_on_one_file_each_see_the_others_writes(tmp_path: Path) -> None:
    """Each keeps its own cache of folded states; a cache behind the stream reads the rest."""
    path = tmp_path / "events.db"
    first, second = SqliteEventStore(path), SqliteEventStore(path)
    one, two = build_applications(first, lambda: NOW), build_applications(second, lambda: NOW)
    register(one.customers, "c-1")
    one.cases.handle(open_case("case-1"), context("open"))
    for n in range(6):
        apps = one if n % 2 else two
        apps.cases.handle(AddNote("case-1", f"note-{n}", "alternating"), context(f"note-{n}"))
    for apps in (one, two):
        loaded = apps.cases.get("case-1")
        assert loaded.revision == 6
        assert loaded.state is not None and loaded.state.note_count == 6
    first.close()
    second.close()


class RacingStore(SqliteEventStore):
    """A real store where, just before one append, another process records a different command
    under the same request id on another stream."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.sneak_in: tuple[str, list[NewEvent]] | None = None

    def append(
        self, stream: str, events: Sequence[NewEvent], expected: ExpectedRevision
    ) -> AppendResult:
        if self.sneak_in is not None:
            other_stream, other_events = self.sneak_in
            self.sneak_in = None
            super().append(other_stream, other_events, StreamState.ANY)
        return super().append(stream, events, expected)


def test_a_request_id_taken_by_another_command_meanwhile_is_refused(tmp_path: Path) -> None:
    store = RacingStore(tmp_path / "events.db")
    apps = build_applications(store, lambda: NOW)
    register(apps.customers, "c-1")
    apps.cases.handle(open_case("case-1"), context("open-1"))
    type_name, data = CODEC.encode(CaseNoteAdded("case-9", "note-9", "elsewhere"))
    metadata = EventMetadata("c-1", NOW, AGENT, "race", "", "race", "another digest")
    store.sneak_in = ("case-case-9", [NewEvent("e-9", type_name, data, metadata)])
    with pytest.raises(InvalidInput, match="different command"):
        apps.cases.handle(AddNote("case-1", "note-1", "called back"), context("race"))
    assert len(store.read_stream("case-case-1")) == 1
    store.close()


@pytest.mark.parametrize("year", [1, 1970, 1999])
def test_a_command_said_to_have_happened_before_the_earliest_instant_is_refused(
    tmp_path: Path, year: int
) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    customers = build_applications(store, lambda: NOW).customers
    long_ago = CommandContext("register-c-1", AGENT, datetime(year, 12, 31, tzinfo=UTC))

    with pytest.raises(InvalidInput) as raised:
        customers.handle(RegisterCustomer("c-1", "Emi Kato", (), "ja", Segment.B2C), long_ago)

    assert raised.value.field == "context.occurred_at"
    assert store.last_position() == 0


def test_a_contact_said_to_have_started_before_the_earliest_instant_is_refused(
    tmp_path: Path,
) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    apps = build_applications(store, lambda: NOW)
    register(apps.customers, "c-1")
    opening = OpenCase("k-1", "c-1", Channel.PHONE, Category.CONTRACT, Priority.LOW, "s", "")
    apps.cases.handle(opening, context("open-k-1"))
    before = store.last_position()
    contact = RecordContact(
        "k-1",
        "ct-1",
        Channel.PHONE,
        Direction.INBOUND,
        ActorKind.AGENT,
        "agent-3",
        ContactOutcome.ANSWERED,
        datetime(1999, 12, 31, 23, 59, tzinfo=UTC),
    )

    with pytest.raises(InvalidInput) as raised:
        apps.cases.handle(contact, context("contact-1"))

    assert raised.value.field == "started_at"
    assert store.last_position() == before


def test_the_earliest_instant_is_a_setting(tmp_path: Path) -> None:
    store = SqliteEventStore(tmp_path / "events.db")
    earlier = datetime(1960, 1, 1, tzinfo=UTC)
    customers = build_applications(store, lambda: NOW, earliest=earlier).customers
    in_1970 = CommandContext("register-c-1", AGENT, datetime(1970, 1, 1, tzinfo=UTC))

    customers.handle(RegisterCustomer("c-1", "Emi Kato", (), "ja", Segment.B2C), in_1970)

    assert store.last_position() == 1
