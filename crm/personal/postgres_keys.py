"""Customers' data keys in a PostgreSQL table of their own (`crm_data_keys`), apart from events.

A deleted row stays in the table's file as a dead tuple until VACUUM reclaims it, so a forget
runs `VACUUM crm_data_keys` afterwards (outside a transaction, as VACUUM must); the WAL and any
base backups keep the wrapped key until they are recycled, which is why keys are wrapped by a
master key held elsewhere.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from crm.personal.keys import KeyStore, MasterKey, forgotten_error, new_data_key
from crm.postgres_connections import open_pool, translated

log = logging.getLogger(__name__)
LABEL = "key store"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS crm_data_keys"
    " (customer_id TEXT PRIMARY KEY, wrapped BYTEA NOT NULL)",
    "CREATE TABLE IF NOT EXISTS crm_forgotten_customers"
    " (customer_id TEXT PRIMARY KEY, forgotten_at TIMESTAMPTZ NOT NULL DEFAULT now())",
)


class PostgresKeyStore(KeyStore):
    """The key table on PostgreSQL, shared by every process that seals or opens personal data."""

    def __init__(self, url: str, field: str, master: MasterKey) -> None:
        self._pool: ConnectionPool = open_pool(url, field, label="crm-key-store", max_size=4)
        self._master = master
        with translated(LABEL), self._pool.connection() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)

    def key_for(self, customer_id: str) -> bytes:
        with translated(LABEL), self._pool.connection() as conn, conn.transaction():
            # Serialises makers of one customer's key (and a forget) on the customer id.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (customer_id,))
            if _forgotten(conn, customer_id):
                raise forgotten_error(customer_id)
            found = conn.execute(
                "SELECT wrapped FROM crm_data_keys WHERE customer_id = %s", (customer_id,)
            ).fetchone()
            if found is not None:
                return self._master.unwrap(customer_id, bytes(found[0]))
            key = new_data_key()
            conn.execute(
                "INSERT INTO crm_data_keys (customer_id, wrapped) VALUES (%s, %s)",
                (customer_id, self._master.wrap(customer_id, key)),
            )
            return key

    def find(self, customer_id: str) -> bytes | None:
        with translated(LABEL), self._pool.connection() as conn:
            found = conn.execute(
                "SELECT wrapped FROM crm_data_keys WHERE customer_id = %s", (customer_id,)
            ).fetchone()
        return None if found is None else self._master.unwrap(customer_id, bytes(found[0]))

    def forget(self, customer_id: str) -> None:
        with translated(LABEL), self._pool.connection() as conn:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (customer_id,))
                conn.execute("DELETE FROM crm_data_keys WHERE customer_id = %s", (customer_id,))
                conn.execute(
                    "INSERT INTO crm_forgotten_customers (customer_id) VALUES (%s)"
                    " ON CONFLICT DO NOTHING",
                    (customer_id,),
                )
            try:
                conn.autocommit = True  # VACUUM cannot run inside a transaction
                conn.execute("VACUUM crm_data_keys")
            except psycopg.Error:  # the key is deleted; the space is reclaimed later
                log.warning("key store: VACUUM after a forget failed", exc_info=True)
            finally:
                conn.autocommit = False

    def is_forgotten(self, customer_id: str) -> bool:
        with translated(LABEL), self._pool.connection() as conn:
            return _forgotten(conn, customer_id)

    def close(self) -> None:
        self._pool.close()


def _forgotten(conn: psycopg.Connection[Any], customer_id: str) -> bool:
    found = conn.execute(
        "SELECT 1 FROM crm_forgotten_customers WHERE customer_id = %s", (customer_id,)
    ).fetchone()
    return found is not None
