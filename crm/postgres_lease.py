"""The lease on PostgreSQL: a session-level advisory lock, held on a connection of its own.

Copies on different machines share the database, not a file system. PostgreSQL releases a
session's advisory locks when the session ends, which it notices when the holder's connection
closes (a killed process's socket is closed by its kernel), so a standby's next try succeeds.

A holder cut off by the network closes nothing, so both ends watch the connection themselves:
the server ends a session whose client stops answering keepalive probes after about
`SERVER_GIVES_UP_SECONDS` (releasing the lock to a standby), and the holder gives its lease up
sooner, when its own check has gone unanswered for `HOLDER_GIVES_UP_SECONDS`, so the two copies
never both believe they hold it.
"""

from __future__ import annotations

import psycopg

from crm.lease import Lease
from crm.postgres_connections import CONNECT_SECONDS

# Advisory lock keys are one 64-bit number per database; hashing a name keeps the leases of
# different processes (relay, deadline worker) apart without a registry of numbers.
_TRY_LOCK = "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))"

HOLDER_GIVES_UP_SECONDS = 10
_SERVER_PROBE = (10, 5, 3)  # idle seconds, seconds between probes, unanswered probes
SERVER_GIVES_UP_SECONDS = _SERVER_PROBE[0] + _SERVER_PROBE[1] * _SERVER_PROBE[2]
_SERVER_KEEPALIVES = (
    f"-c tcp_keepalives_idle={_SERVER_PROBE[0]} -c tcp_keepalives_interval={_SERVER_PROBE[1]}"
    f" -c tcp_keepalives_count={_SERVER_PROBE[2]}"
)


class PostgresLease(Lease):
    """One named lease in one database."""

    def __init__(self, url: str, name: str) -> None:
        self._url = url
        self._name = name
        self._connection: psycopg.Connection[tuple[object, ...]] | None = None

    def try_acquire(self) -> bool:
        if self.held():
            return True
        try:
            connection = psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=int(CONNECT_SECONDS),
                options=_SERVER_KEEPALIVES,
                # the holder's side: unanswered data, or an idle line whose probes go unanswered,
                # ends the connection (and so the lease) before the server releases the lock
                tcp_user_timeout=HOLDER_GIVES_UP_SECONDS * 1000,
                keepalives=1,
                keepalives_idle=HOLDER_GIVES_UP_SECONDS // 2,
                keepalives_interval=1,
                keepalives_count=HOLDER_GIVES_UP_SECONDS // 2,
            )
        except psycopg.OperationalError:
            return False  # the database is away: nobody can be sure to hold it, try again
        row = connection.execute(_TRY_LOCK, (self._name,)).fetchone()
        if row is not None and row[0] is True:
            self._connection = connection
            return True
        connection.close()
        return False

    def held(self) -> bool:
        if self._connection is None:
            return False
        try:
            self._connection.execute("SELECT 1")
        except psycopg.Error:
            self.release()  # the session, and the lock with it, is gone
            return False
        return True

    def release(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
