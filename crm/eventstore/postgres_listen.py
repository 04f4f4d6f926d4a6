"""Wakes this process's followers when any process commits to the PostgreSQL event store.

Every append transaction sends a NOTIFY on one channel; PostgreSQL delivers it at commit, and only
if the transaction commits. A thread of each store LISTENs on a connection of its own (a pooled
connection would be handed to other work between notifications) and calls back for each one.
A notification is a hint, never a guarantee: while the connection is lost, followers poll as they
always do; after reconnecting, the thread calls back once, for whatever it may have missed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg

log = logging.getLogger(__name__)

CHANNEL = "crm_events_appended"
STOP_PAYLOAD = "stop"
WAIT_SECONDS = 5.0
"""Longest wait for a notification before checking whether to stop, when a stop's own wake-up
notification was lost."""
FIRST_RETRY_SECONDS = 0.1
MAX_RETRY_SECONDS = 5.0
CONNECT_SECONDS = 10


class AppendListener:
    """A daemon thread that LISTENs for appends and calls `on_append` for each notification."""

    def __init__(self, url: str, label: str, on_append: Callable[[], None]) -> None:
        self._url = url
        self._label = label
        self._on_append = on_append
        self._stopped = threading.Event()
        self.listening = threading.Event()
        """Set while the thread holds a listening connection (tests wait for it)."""
        self._token = f"{STOP_PAYLOAD}-{id(self)}"
        self._thread = threading.Thread(target=self._run, name=f"{label} listener", daemon=True)
        self._thread.start()

    def stop(self, wake: Callable[[str], None]) -> None:
        """End the thread: `wake(payload)` sends a notification that ends its wait at once."""
        self._stopped.set()
        if self.listening.is_set():  # otherwise it waits to reconnect, and that wait is over
            try:
                wake(self._token)
            except Exception:  # the wait ends within WAIT_SECONDS anyway
                log.debug("%s: could not wake the listener to stop it", self._label)
        self._thread.join(WAIT_SECONDS + 1)

    def _run(self) -> None:
        delay = FIRST_RETRY_SECONDS
        while not self._stopped.is_set():
            try:
                with self._connect() as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    delay = FIRST_RETRY_SECONDS
                    self._on_append()  # whatever was committed while not listening
                    self._listen(conn)
            except psycopg.Error as exc:
                self.listening.clear()
                if self._stopped.is_set():
                    return
                # The driver's message, never the URL (it may carry a password).
                log.warning(
                    "%s: listening for appends failed (%s); followers poll meanwhile,"
                    " retrying in %.1fs",
                    self._label,
                    type(exc).__name__,
                    delay,
                )
                self._stopped.wait(delay)
                delay = min(MAX_RETRY_SECONDS, delay * 2)
        self.listening.clear()

    def _connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            self._url,
            autocommit=True,
            application_name=f"{self._label} listener",
            connect_timeout=CONNECT_SECONDS,
        )

    def _listen(self, conn: psycopg.Connection[Any]) -> None:
        while not self._stopped.is_set():
            for notify in conn.notifies(timeout=WAIT_SECONDS):
                if notify.payload == self._token or self._stopped.is_set():
                    return
                if not notify.payload.startswith(STOP_PAYLOAD):  # not another store's stop
                    self._on_append()
