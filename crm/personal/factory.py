"""Opens the key store a URL names and the master key that wraps its keys."""

from __future__ import annotations

from crm.personal.keys import KeyStore, MasterKey
from crm.personal.postgres_keys import PostgresKeyStore
from crm.personal.sqlite_keys import SqliteKeyStore
from crm.postgres_connections import is_postgres
from crm.urls import is_sqlite, sqlite_path


def open_key_store(url: str, field: str, master: MasterKey) -> KeyStore:
    """The key store at `url` (sqlite:///path or postgresql://...); ValueError for another."""
    if is_postgres(url):
        return PostgresKeyStore(url, field, master)
    if is_sqlite(url):
        return SqliteKeyStore(sqlite_path(url, field), master)
    raise ValueError("must be sqlite:///<path> or postgresql://<user>@<host>:<port>/<database>")
