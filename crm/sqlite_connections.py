"""SQLite plumbing shared by the embedded stores: connections, write transactions, errors.

gRPC serves calls from a thread pool and a sqlite3 connection belongs to one thread at a time,
so each thread gets its own; `synchronous=FULL` makes a commit durable before it returns, and
writes run under `BEGIN IMMEDIATE` so writers are serialised by the database itself. sqlite3's
exceptions are translated into the system's error tree in one place.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from crm.errors import IntegrityError, OperationalError, PersistenceError

BUSY_TIMEOUT_SECONDS = 30.0


class ThreadConnections:
    """Hands each thread its own connection to one SQLite file."""

    def __init__(self, path: Path, label: str) -> None:
        self._path = path
        self._label = label
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False

    def get(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use (sqlite3 errors are the caller's)."""
        if self._closed:
            raise OperationalError(f"{self._label} {self._path} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if conn is None:
            with self._lock:
                conn = sqlite3.connect(
                    self._path,
                    timeout=BUSY_TIMEOUT_SECONDS,
                    isolation_level=None,  # BEGIN and COMMIT are issued explicitly
                    check_same_thread=False,  # so close() may close every thread's connection
                )
                conn.execute("PRAGMA synchronous=FULL")
                self._connections.append(conn)
            self._local.connection = conn
        return conn

    def close(self) -> None:
        """Close every thread's connection; `get` refuses afterwards."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes the database's write lock at once."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise


@contextmanager
def translated(label: str) -> Iterator[None]:
    """Turn sqlite3's exceptions into the system's error tree, naming the store in the message.

    The original sqlite3 exception stays the `__cause__`, so a store may map some of them further
    (the event store turns a lost unique-constraint race into a ConcurrencyConflict).
    """
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise IntegrityError(f"{label}: {exc}") from exc
    except sqlite3.OperationalError as exc:
        raise OperationalError(f"{label}: {exc}") from exc
    except sqlite3.Error as exc:
        raise PersistenceError(f"{label}: {exc}") from exc
