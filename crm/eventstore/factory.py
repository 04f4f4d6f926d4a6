"""Picks the event store adapter from a configuration URL; only the composition root calls it."""

from __future__ import annotations

from crm.eventstore.port import EventStore
from crm.eventstore.postgres import PostgresEventStore
from crm.eventstore.sqlite import SqliteEventStore
from crm.postgres_connections import POSTGRES_FORM, is_postgres
from crm.urls import SQLITE_FORM, is_sqlite, sqlite_path, unsupported

FIELD = "event_store_url"


def open_event_store(url: str) -> EventStore:
    """Open the event store a URL names: `sqlite:///<path>` (see crm.urls) or PostgreSQL's
    `postgresql://` (also spelled `postgres://`).

    An SQLite store rings a doorbell on every commit, so followers in other processes (the relay,
    the deadline worker) wake at once instead of at their next poll; a PostgreSQL store does the
    same with NOTIFY, across machines too.
    """
    if is_sqlite(url):
        path = sqlite_path(url, FIELD)
        store = SqliteEventStore(path)
        store.ring_across_processes(path)
        return store
    if is_postgres(url):
        return PostgresEventStore(url, field=FIELD)
    raise unsupported(url, FIELD, f"{SQLITE_FORM}, {POSTGRES_FORM}")
