"""Picks the view store adapter from a configuration URL; only the composition root calls it."""

from __future__ import annotations

from crm.postgres_connections import POSTGRES_FORM, is_postgres
from crm.urls import SQLITE_FORM, is_sqlite, sqlite_path, unsupported
from projections.store.port import ViewStore
from projections.store.postgres import PostgresViewStore
from projections.store.sqlite import SqliteViewStore


def open_view_store(url: str) -> ViewStore:
    """Open the view store a URL names: `sqlite:///<path>` (see crm.urls.sqlite_path) or
    `postgresql://...`; either way it wakes when another process applies a batch."""
    if is_sqlite(url):
        path = sqlite_path(url, "read_store_url")
        store = SqliteViewStore(path)
        store.ring_across_processes(path)
        return store
    if is_postgres(url):
        views = PostgresViewStore(url, field="read_store_url")
        views.listen_across_processes()
        return views
    raise unsupported(url, "read_store_url", f"{SQLITE_FORM}, {POSTGRES_FORM}")
