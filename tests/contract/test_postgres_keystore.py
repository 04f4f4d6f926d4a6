"""The PostgreSQL key store against the shared contract, plus: a forget vacuums the key table."""

from __future__ import annotations

import psycopg
import pytest

from crm.personal.keys import KeyStore, MasterKey
from crm.personal.postgres_keys import PostgresKeyStore
from tests.contract.keystore_contract import MASTER, KeyStoreContract


class TestPostgresKeyStore(KeyStoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, postgres_url: str) -> None:
        self.url = postgres_url

    def make_store(self, master: MasterKey = MASTER) -> KeyStore:
        return PostgresKeyStore(self.url, "key_store_url", master)


def test_a_forget_vacuums_the_key_table(postgres_url: str) -> None:
    store = PostgresKeyStore(postgres_url, "key_store_url", MASTER)
    try:
        for n in range(10):
            store.key_for(f"c-{n}")
        store.forget("c-3")
        with psycopg.connect(postgres_url) as conn:
            (vacuumed,) = conn.execute(
                "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables"
                " WHERE relname = 'crm_data_keys'"
            ).fetchone()  # type: ignore[misc]
        assert vacuumed
    finally:
        store.close()
