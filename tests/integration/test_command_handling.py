"""Command handling on a real SQLite store: bounded retries; merges that survive a crash."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crm.command_handling import MAX_ATTEMPTS, CommandContext
from crm.envelope import NewEvent
from crm.errors import ConcurrencyConflict, InvariantViolated, OperationalError
from crm.eventstore.port import AppendResult, ExpectedRevision
from crm.eventstore.sqlite import SqliteEventStore
from crm.vocabulary import Actor, ActorKind, Channel, Priority
from services.bootstrap import build_applications
from services.case.commands import OpenCase
from services.case.events import Category
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
