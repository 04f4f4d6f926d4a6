"""The SQLite key store against the shared contract, plus: deleted key bytes leave its files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from crm.personal.keys import KeyStore, MasterKey
from crm.personal.sqlite_keys import SqliteKeyStore
from tests.contract.keystore_contract import MASTER, KeyStoreContract


class TestSqliteKeyStore(KeyStoreContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.path = tmp_path / "keys.db"

    def make_store(self, master: MasterKey = MASTER) -> KeyStore:
        return SqliteKeyStore(self.path, master)


def test_a_forgotten_key_leaves_no_bytes_in_the_file_or_its_wal(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    store = SqliteKeyStore(path, MASTER)
    try:
        for n in range(50):
            store.key_for(f"c-{n}")
        with sqlite3.connect(path) as conn:
            (wrapped,) = conn.execute(
                "SELECT wrapped FROM data_keys WHERE customer_id = 'c-7'"
            ).fetchone()
        files = [path, path.with_name("keys.db-wal")]
        assert any(bytes(wrapped) in f.read_bytes() for f in files if f.exists())
        store.forget("c-7")
        for file in tmp_path.iterdir():
            assert bytes(wrapped) not in file.read_bytes(), file.name
        assert store.find("c-8") is not None
    finally:
        store.close()
