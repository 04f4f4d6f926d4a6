"""Picks the read store adapter from a configuration URL; only the composition root calls it."""

from __future__ import annotations

from crm.readstore.port import ReadStore
from crm.readstore.sqlite import SqliteReadStore
from crm.urls import SQLITE_FORM, is_sqlite, sqlite_path, unsupported


def open_read_store(url: str) -> ReadStore:
    """Open the read store a URL names: `sqlite:///<path>` (see crm.urls.sqlite_path)."""
    if is_sqlite(url):
        return SqliteReadStore(sqlite_path(url, "read_store_url"))
    raise unsupported(url, "read_store_url", SQLITE_FORM)
