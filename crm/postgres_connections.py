"""PostgreSQL plumbing shared by the event store, the view store and the checkpoints on PostgreSQL.

One psycopg 3 connection pool per store (psycopg_pool), opened and checked at start so that a
malformed or unreachable URL fails there, naming the setting; and one translation of psycopg's
exceptions into the system's error tree, as `crm.sqlite_connections` does for SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from crm.errors import IntegrityError, InvalidInput, OperationalError, PersistenceError

POSTGRES_FORM = "postgresql://<user>@<host>:<port>/<database>"
CONNECT_SECONDS = 10.0


def is_postgres(url: str) -> bool:
    """Whether the URL names PostgreSQL at all (well formed or not)."""
    return url.startswith(("postgresql:", "postgres:"))


def open_pool(url: str, field: str, *, label: str, max_size: int = 8) -> ConnectionPool:
    """A pool on `url`, its first connection made before returning.

    `field` names the configuration setting in the error raised for a malformed or unreachable
    URL; `label` names the store in the pool's connections (`application_name`) and in errors.
    """
    _check_form(url, field)
    try:
        # One plain connection first: a refused or unknown server fails at once with its reason,
        # where the pool would retry until its timeout.
        psycopg.connect(url, connect_timeout=int(CONNECT_SECONDS)).close()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(
            field,
            f"cannot connect to PostgreSQL at {_where(url)} ({reason}); check that the server"
            " runs and the URL's host, port, user and database",
        ) from exc
    pool = ConnectionPool(
        url,
        min_size=1,
        max_size=max_size,
        kwargs={"application_name": label, "connect_timeout": int(CONNECT_SECONDS)},
        open=False,
        name=label,
    )
    try:
        pool.open(wait=True, timeout=CONNECT_SECONDS)
    except PoolTimeout as exc:
        pool.close()
        raise InvalidInput(
            field,
            f"cannot connect to PostgreSQL at {_where(url)} within {CONNECT_SECONDS:.0f} s;"
            " check that the server runs and the URL's host, port, user and database",
        ) from exc
    return pool


def _check_form(url: str, field: str) -> None:
    """Refuse a URL that cannot name a database: a port that is no number, or no database."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
        conninfo_to_dict(url)
    except (ValueError, psycopg.ProgrammingError) as exc:
        raise InvalidInput(
            field, f"malformed PostgreSQL URL ({exc}); expected {POSTGRES_FORM}"
        ) from None
    if not parts.path.strip("/"):
        raise InvalidInput(field, f"the URL names no database; expected {POSTGRES_FORM}")


def _where(url: str) -> str:
    """Host, port and database of a URL, never its password."""
    parts = conninfo_to_dict(url)
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


@contextmanager
def translated(label: str) -> Iterator[None]:
    """Turn psycopg's exceptions into the system's error tree, naming the store in the message.

    The original exception stays the `__cause__`, so a store may map some further (a lost
    unique-constraint race becomes a ConcurrencyConflict in the event store).
    """
    try:
        yield
    except psycopg.IntegrityError as exc:
        raise IntegrityError(f"{label}: {exc}") from exc
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise OperationalError(f"{label}: {exc}") from exc
    except psycopg.Error as exc:
        raise PersistenceError(f"{label}: {exc}") from exc
