"""Wake on views written by another process: PostgreSQL's LISTEN/NOTIFY as the view store's bell.

Each batch the PostgreSQL view store applies sends a notification on one channel, delivered when
the batch commits (and never when it rolls back). A listener holds one connection of its own that
LISTENs on the channel, in a daemon thread, and calls back for every notification some other
store instance sent: a query API whose views a Kafka worker writes wakes its watches at once. As
with the SQLite doorbell, a notification is a hint: a lost one (a dropped connection, reconnected
after a pause) only means watchers notice at their next poll, and a reconnection calls back once
in case something was missed meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

log = logging.getLogger(__name__)

CHANNEL = "crm_views_changed"
RECONNECT_SECONDS = 1.0
POLL_SECONDS = 1.0
"""How often the listening thread looks whether it was stopped, when nothing arrives."""


class ChangeListener:
    """LISTENs on CHANNEL in a thread of its own; `stop` ends it."""

    def __init__(self, url: str, token: str, on_change: Callable[[], None], label: str) -> None:
        self._url = url
        self._token = token  # the payload this store's own notifications carry: not news here
        self._on_change = on_change
        self._label = label
        self._stopped = threading.Event()
        self._listening = threading.Event()
        self._thread = threading.Thread(target=self._run, name="view-store-listen", daemon=True)

    def start(self, timeout: float) -> None:
        """Start listening; returns once the first LISTEN is in place, or after `timeout`."""
        self._thread.start()
        self._listening.wait(timeout)

    def stop(self, wake: Callable[[], None], timeout: float) -> None:
        """End the thread: `wake` sends it a notification so that it need not wait for a poll."""
        self._stopped.set()
        if self._thread.is_alive():
            try:
                wake()
            except Exception:  # the store may be unreachable: the thread still ends at a poll
                log.debug("%s: could not wake the listener", self._label, exc_info=True)
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                self._listen()
            except psycopg.Error as exc:
                # The URL stays out of the log: it may hold a password.
                log.warning("%s: listening for changes failed (%s); retrying", self._label, exc)
                self._stopped.wait(RECONNECT_SECONDS)

    def _listen(self) -> None:
        with psycopg.connect(
            self._url, autocommit=True, application_name=f"{self._label} listener"
        ) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            if self._listening.is_set():
                self._on_change()  # reconnected: something may have changed meanwhile
            self._listening.set()
            while not self._stopped.is_set():
                for notice in conn.notifies(timeout=POLL_SECONDS):
                    if self._stopped.is_set():
                        return
                    if notice.payload != self._token:
                        self._on_change()
