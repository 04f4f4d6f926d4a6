"""The throwaway PostgreSQL the tests start: it serves, and a crash keeps what was committed."""

from __future__ import annotations

import psycopg

from tests.postgres_server import PostgresServer, load_local_postgres


def test_each_test_database_starts_empty_and_apart(postgres_server: PostgresServer) -> None:
    first = postgres_server.create_database("launcher_first")
    second = postgres_server.create_database("launcher_second")
    with psycopg.connect(first, autocommit=True) as connection:
        connection.execute("CREATE TABLE marks (n int)")
    with psycopg.connect(second, autocommit=True) as connection:
        found = connection.execute("SELECT to_regclass('marks') IS NOT NULL").fetchone()
    assert found == (False,)


def test_a_killed_server_restarts_with_every_committed_row() -> None:
    server: PostgresServer = load_local_postgres().LocalPostgres()
    server.start()
    try:
        with psycopg.connect(server.url, autocommit=True) as connection:
            connection.execute("CREATE TABLE marks (n int)")
            connection.execute("INSERT INTO marks SELECT generate_series(1, 100)")
        server.kill()
        server.start()
        with psycopg.connect(server.url) as connection:
            assert connection.execute("SELECT count(*) FROM marks").fetchone() == (100,)
    finally:
        server.stop()
