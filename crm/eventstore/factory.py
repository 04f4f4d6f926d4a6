"""Picks the event store adapter from a configuration URL; only the composition root calls it."""

from __future__ import annotations

from crm.errors import InvalidInput
from crm.eventstore.kurrentdb_url import KURRENTDB_FORM, is_kurrentdb
from crm.eventstore.port import EventStore
from crm.eventstore.sqlite import SqliteEventStore
from crm.urls import SQLITE_FORM, is_sqlite, sqlite_path, unsupported

FIELD = "event_store_url"


def open_event_store(url: str) -> EventStore:
    """Open the event store a URL names; see crm.urls for the `sqlite:///<path>` rule and
    crm.eventstore.kurrentdb_url for `kurrentdb://`.

    An SQLite store rings a doorbell on every commit, so followers in other processes (the relay,
    the deadline worker) wake at once instead of at their next poll.
    """
    if is_sqlite(url):
        path = sqlite_path(url, FIELD)
        store = SqliteEventStore(path)
        store.ring_across_processes(path)
        return store
    if is_kurrentdb(url):
        return _open_kurrentdb(url)
    raise unsupported(url, FIELD, f"{SQLITE_FORM}, {KURRENTDB_FORM}")


def _open_kurrentdb(url: str) -> EventStore:
    """KurrentDB's adapter is imported only here: its client is an optional extra."""
    try:
        from crm.eventstore.kurrentdb import open_kurrentdb
    except ImportError as exc:
        raise InvalidInput(
            FIELD,
            f"{url.split(':', 1)[0]}:// needs the kurrentdb extra"
            f" (pip install 'crm-case-history[kurrentdb]'): {exc}",
        ) from None
    return open_kurrentdb(url, FIELD)
