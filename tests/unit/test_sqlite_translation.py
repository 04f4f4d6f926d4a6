"""sqlite3's exceptions reach callers as the system's error tree, from one helper for all stores."""

from __future__ import annotations

import sqlite3

import pytest

from crm.errors import (
    ConcurrencyConflict,
    CrmError,
    IntegrityError,
    OperationalError,
    PersistenceError,
)
from crm.eventstore.sqlite import _translated as event_store_translated
from crm.sqlite_connections import translated


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (sqlite3.IntegrityError("UNIQUE constraint failed: t.id"), IntegrityError),
        (sqlite3.OperationalError("database is locked"), OperationalError),
        (sqlite3.DatabaseError("file is not a database"), PersistenceError),
    ],
)
def test_sqlite_errors_are_translated_naming_the_store(
    raised: sqlite3.Error, expected: type[CrmError]
) -> None:
    with pytest.raises(expected) as caught, translated("some store"):
        raise raised
    assert type(caught.value) is expected
    assert str(caught.value) == f"some store: {raised}"
    assert caught.value.__cause__ is raised


def test_other_exceptions_pass_through() -> None:
    with pytest.raises(KeyError), translated("some store"):
        raise KeyError("not sqlite's")


@pytest.mark.parametrize(
    "message",
    [
        "UNIQUE constraint failed: events.event_id",
        "UNIQUE constraint failed: events.stream, events.revision",
    ],
)
def test_the_event_store_treats_a_unique_constraint_race_as_a_conflict(message: str) -> None:
    conflict = pytest.raises(ConcurrencyConflict, match="another writer appended first")
    with conflict, event_store_translated():
        raise sqlite3.IntegrityError(message)


def test_the_event_store_keeps_other_integrity_errors() -> None:
    kept = pytest.raises(IntegrityError, match="sqlite event store: NOT NULL")
    with kept, event_store_translated():
        raise sqlite3.IntegrityError("NOT NULL constraint failed: events.type")
    with pytest.raises(IntegrityError, match="Case-1@1"), event_store_translated():
        raise IntegrityError("broken hash chain at Case-1@1")  # ours, not sqlite3's: kept
