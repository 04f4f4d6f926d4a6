"""Picks the event store adapter from a configuration URL; only the composition root calls it."""

from __future__ import annotations

from crm.eventstore.port import EventStore
from crm.eventstore.sqlite import SqliteEventStore
from crm.urls import SQLITE_FORM, is_sqlite, sqlite_path, unsupported

FIELD = "event_store_url"


def open_event_store(url: str) -> EventStore:
    """Open the event store a URL names; see crm.urls for the `sqlite:///<path>` rule."""
    if is_sqlite(url):
        return SqliteEventStore(sqlite_path(url, FIELD))
    raise unsupported(url, FIELD, SQLITE_FORM)
