"""Customers' data keys in an SQLite file of their own, beside (never inside) the event store.

Deleted key bytes must not linger in the file: `secure_delete` overwrites freed cells with
zeros, and after a forget the WAL is checkpointed and truncated, so the key's old page images
leave the -wal file too.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

from crm.errors import OperationalError
from crm.personal.keys import KeyStore, MasterKey, forgotten_error, new_data_key

log = logging.getLogger(__name__)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS data_keys (customer_id TEXT PRIMARY KEY, wrapped BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS forgotten_customers"
    " (customer_id TEXT PRIMARY KEY, forgotten_at TEXT NOT NULL)",
)


class SqliteKeyStore(KeyStore):
    """The key table in one SQLite file; one connection, taken in turns (keys are cached above)."""

    def __init__(self, path: Path, master: MasterKey) -> None:
        self._path = path
        self._master = master
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA secure_delete=ON")
            for statement in _SCHEMA:
                self._conn.execute(statement)
        except (sqlite3.Error, OSError) as exc:
            raise OperationalError(f"key store {path}: {exc}") from None

    def key_for(self, customer_id: str) -> bytes:
        with self._lock, _translated(self._path):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                if self._forgotten(customer_id):
                    raise forgotten_error(customer_id)
                row = self._row(customer_id)
                if row is None:
                    key = new_data_key()
                    self._conn.execute(
                        "INSERT INTO data_keys (customer_id, wrapped) VALUES (?, ?)",
                        (customer_id, self._master.wrap(customer_id, key)),
                    )
                    self._conn.execute("COMMIT")
                    return key
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return self._master.unwrap(customer_id, row)

    def find(self, customer_id: str) -> bytes | None:
        with self._lock, _translated(self._path):
            row = self._row(customer_id)
        return None if row is None else self._master.unwrap(customer_id, row)

    def forget(self, customer_id: str) -> None:
        with self._lock, _translated(self._path):
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("DELETE FROM data_keys WHERE customer_id = ?", (customer_id,))
                self._conn.execute(
                    "INSERT OR IGNORE INTO forgotten_customers VALUES (?, ?)",
                    (customer_id, datetime.now(UTC).isoformat()),
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:  # a reader in another process holds the WAL; its next checkpoint clears it
            log.warning("key store %s: WAL not truncated after a forget (busy)", self._path)

    def is_forgotten(self, customer_id: str) -> bool:
        with self._lock, _translated(self._path):
            return self._forgotten(customer_id)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _row(self, customer_id: str) -> bytes | None:
        found = self._conn.execute(
            "SELECT wrapped FROM data_keys WHERE customer_id = ?", (customer_id,)
        ).fetchone()
        return None if found is None else bytes(found[0])

    def _forgotten(self, customer_id: str) -> bool:
        found = self._conn.execute(
            "SELECT 1 FROM forgotten_customers WHERE customer_id = ?", (customer_id,)
        ).fetchone()
        return found is not None


class _translated:
    """sqlite3's errors as the system's OperationalError, naming the file."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, sqlite3.Error):
            raise OperationalError(f"key store {self._path}: {exc}") from None
