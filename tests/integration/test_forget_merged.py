"""Forgetting a customer who absorbed duplicates forgets every profile merged into it; forgetting
a merged-away profile forgets that profile alone."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crm.command_handling import CommandContext
from crm.eventstore.sqlite import SqliteEventStore
from crm.personal.cipher import PLACEHOLDER, PersonalData
from crm.personal.keys import MasterKey
from crm.personal.sqlite_keys import SqliteKeyStore
from crm.vocabulary import Actor, ActorKind
from services.bootstrap import Applications, build_applications
from services.customer.commands import ForgetCustomer, MergeCustomers, RegisterCustomer
from services.customer.events import Segment

_requests = itertools.count(1)


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[Applications]:
    store = SqliteEventStore(tmp_path / "events.db")
    keys = SqliteKeyStore(tmp_path / "keys.db", MasterKey(bytes(32)))
    personal = PersonalData(keys, digest_key=bytes(32))
    yield build_applications(store, lambda: datetime.now(UTC), personal=personal)
    keys.close()
    store.close()


def _context() -> CommandContext:
    return CommandContext(
        f"fm-{next(_requests)}", Actor(ActorKind.SUPERVISOR, "sup-1"), datetime.now(UTC)
    )


def _register(apps: Applications, customer_id: str, name: str) -> None:
    apps.customers.handle(RegisterCustomer(customer_id, name, (), "en", Segment.B2C), _context())


def _name(apps: Applications, customer_id: str) -> str:
    state = apps.customers.get(customer_id).state
    assert state is not None
    return state.name


def test_forgetting_a_survivor_forgets_the_profiles_merged_into_it(apps: Applications) -> None:
    _register(apps, "s", "Survivor Name")
    _register(apps, "d", "Duplicate Name")
    _register(apps, "x", "Bystander Name")
    apps.customers.merge(MergeCustomers("d", "s", "m-1", "same person"), _context())
    apps.customers.forget(ForgetCustomer("s", "ticket F-1"), _context())
    assert (_name(apps, "s"), _name(apps, "d"), _name(apps, "x")) == (
        PLACEHOLDER,
        PLACEHOLDER,
        "Bystander Name",
    )
    forgotten = apps.customers.get("s").state
    assert forgotten is not None and forgotten.forgotten_customer_ids == ("s", "d")


def test_forgetting_a_merged_away_profile_forgets_it_alone(apps: Applications) -> None:
    _register(apps, "s", "Survivor Name")
    _register(apps, "d", "Duplicate Name")
    apps.customers.merge(MergeCustomers("d", "s", "m-1", "same person"), _context())
    apps.customers.forget(ForgetCustomer("d", "ticket F-2"), _context())
    assert (_name(apps, "s"), _name(apps, "d")) == ("Survivor Name", PLACEHOLDER)
