"""The KurrentDB store's appended signal: a catch-up subscription to `$all` that rings it.

Followers in this process (crm.follow) wait on the store's change signal between reads. Appends
made through this store ring it themselves; this subscription rings it for the appends of every
other process, which an SQLite store learns of from its doorbell. It only wakes followers: they
read the events themselves from their own checkpoints, so a missed ring costs one poll interval
and never an event.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kurrentdbclient.common import AbstractCatchupSubscription

from crm.eventstore.kurrentdb_client import KurrentClient

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0


class AppendWatch:
    """A thread that follows `$all` (the store's event streams only) and calls `ring` per event."""

    def __init__(self, client: KurrentClient, events_filter: str, ring: Callable[[], None]):
        self._client = client
        self._filter = events_filter
        self._ring = ring
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._subscription: AbstractCatchupSubscription | None = None
        self.thread = threading.Thread(target=self._run, name="kurrentdb-appended", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        position: int | None = None  # from the end at first; after a failure, from the last seen
        while not self._stopped.is_set():
            try:
                subscription = self._client.subscribe_to_all(
                    commit_position=position,
                    from_end=position is None,
                    filter_include=(self._filter,),
                    filter_by_stream_name=True,
                )
                with self._lock:
                    self._subscription = subscription
                if self._stopped.is_set():
                    break
                # Whatever was appended while there was no subscription rang nothing: one ring
                # now sends followers to look.
                self._ring()
                for event in subscription:
                    position = event.commit_position
                    self._ring()
            except Exception as exc:  # any failure: log, wait, subscribe again
                if self._stopped.is_set():
                    break
                log.warning("kurrentdb event store: appended signal lost, resubscribing: %r", exc)
                self._stopped.wait(RETRY_SECONDS)
            finally:
                self._stop_subscription()

    def _stop_subscription(self) -> None:
        with self._lock:
            subscription, self._subscription = self._subscription, None
        if subscription is not None:
            try:
                subscription.stop()
            except Exception as exc:  # stopping a broken subscription may fail; nothing to save
                log.debug("kurrentdb event store: stopping a subscription: %r", exc)

    def stop(self, timeout: float = 5.0) -> None:
        """End the subscription and wait for the thread (a store's close calls it)."""
        self._stopped.set()
        self._stop_subscription()
        self.thread.join(timeout)
