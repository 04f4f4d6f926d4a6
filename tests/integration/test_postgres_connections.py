"""Opening a PostgreSQL store's pool: a wrong URL fails at once, naming the setting."""

from __future__ import annotations

import pytest

from crm.errors import InvalidInput, OperationalError
from crm.postgres_connections import is_postgres, open_pool, translated
from tests.postgres_server import PostgresServer, load_local_postgres


def _free_port() -> int:
    port: int = load_local_postgres().free_port()
    return port


def test_a_reachable_url_opens_a_working_pool(postgres_url: str) -> None:
    pool = open_pool(postgres_url, "event_store_url", label="events")
    try:
        with pool.connection() as connection:
            assert connection.execute("SELECT current_setting('application_name')").fetchone() == (
                "events",
            )
    finally:
        pool.close()


def test_an_unreachable_server_fails_naming_the_setting() -> None:
    url = f"postgresql://crm@127.0.0.1:{_free_port()}/crm"
    with pytest.raises(InvalidInput) as caught:
        open_pool(url, "event_store_url", label="events")
    assert caught.value.field == "event_store_url"
    assert "cannot connect" in str(caught.value)


def test_a_malformed_url_fails_naming_the_setting() -> None:
    with pytest.raises(InvalidInput) as caught:
        open_pool("postgresql://crm@host:notaport/crm", "read_store_url", label="views")
    assert caught.value.field == "read_store_url"
    assert "malformed" in str(caught.value)


def test_a_password_never_appears_in_the_error() -> None:
    url = f"postgresql://crm:s3cret-word@127.0.0.1:{_free_port()}/crm"
    with pytest.raises(InvalidInput) as caught:
        open_pool(url, "event_store_url", label="events")
    assert "s3cret-word" not in str(caught.value)


def test_driver_errors_become_the_systems_errors(postgres_server: PostgresServer) -> None:
    pool = open_pool(postgres_server.url, "event_store_url", label="events")
    try:
        with (
            pytest.raises(OperationalError, match="events"),
            translated("events"),
            pool.connection() as connection,
        ):
            connection.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    finally:
        pool.close()


def test_both_spellings_name_postgres() -> None:
    assert is_postgres("postgresql://x/y") and is_postgres("postgres://x/y")
    assert not is_postgres("sqlite:///x.db")
