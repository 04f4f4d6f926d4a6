"""Picks the event store adapter from a configuration URL; only the composition root calls it."""

from __future__ import annotations

from crm.eventstore.port import EventStore
from crm.eventstore.sqlite import SqliteEventStore
from crm.urls import SQLITE_FORM, is_sqlite, sqlite_path, unsupported

FIELD = "event_store_url"


def open_event_store(url: str) -> EventStore:
    """Open the event store a URL names; see crm.urls for the `sqlite:///<path>` rule.

    An SQLite store rings a doorbell on every commit, so followers in other processes (the relay,
    the deadline worker) wake at once instead of at their next poll.
    """
    if is_sqlite(url):
        path = sqlite_path(url, FIELD)
        store = SqliteEventStore(path)
        store.ring_across_processes(path)
        return store
    raise unsupported(url, FIELD, SQLITE_FORM)
