"""One loop that follows the event store's global order from a consumer's checkpoint.

The in-process projector, the relay and the deadline process all tail the store the same way, and
each needs the same rules, so they live here once: the change signal's generation is taken before
reading, so an append committed during the read is not waited for; a failure is logged with the
batch's span (never its payloads) and retried from the checkpoint after a capped, jittered
backoff, so no batch is ever skipped; and a stop ends the loop promptly, even while it waits.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable

from crm.envelope import RecordedEvent
from crm.errors import InvalidInput
from crm.eventstore.port import EventStore

log = logging.getLogger(__name__)

FIRST_BACKOFF_SECONDS = 0.05
MAX_BACKOFF_SECONDS = 5.0


class Follower:
    """Hands a consumer every event after its checkpoint, in global order, batch by batch.

    `checkpoint` is asked before every read, so the consumer's own record of what it has handled
    decides where reading resumes: `handle` must move it to the batch's last position before it
    returns, or raise. `idle` is called whenever the loop has caught up; it may do the consumer's
    idle work and returns how many seconds to wait for an append before reading again. Appends in
    this process wake the loop at once; appends by other processes are seen when that wait ends.
    """

    def __init__(
        self,
        store: EventStore,
        name: str,
        *,
        checkpoint: Callable[[], int],
        handle: Callable[[list[RecordedEvent]], None],
        idle: Callable[[], float],
        batch_size: int = 500,
        first_backoff: float = FIRST_BACKOFF_SECONDS,
        max_backoff: float = MAX_BACKOFF_SECONDS,
    ) -> None:
        if batch_size < 1:
            raise InvalidInput("batch_size", "must be at least 1")
        self._store = store
        self._name = name
        self._checkpoint = checkpoint
        self._handle = handle
        self._idle = idle
        self._batch_size = batch_size
        self._first_backoff = first_backoff
        self._max_backoff = max_backoff
        self._stopped = threading.Event()

    def run(self) -> None:
        """Follow the store until `stop` is called; every failure is logged and retried."""
        signal = self._store.appended
        failures = 0
        while not self._stopped.is_set():
            seen = signal.generation  # before reading: an append during the read wakes the wait
            after: int | None = None
            batch: list[RecordedEvent] = []
            try:
                after = self._checkpoint()
                batch = self._store.read_all(after=after, limit=self._batch_size)
                if batch:
                    self._handle(batch)
                    failures = 0
                    continue
                timeout = self._idle()
            except Exception:
                failures += 1
                delay = self._backoff(failures)
                log.exception(
                    "%s: %s failed; retrying from the checkpoint in %.2fs",
                    self._name,
                    _what(after, batch),
                    delay,
                    extra={"follower": self._name},
                )
                self._stopped.wait(delay)
                continue
            failures = 0
            if not self._stopped.is_set():
                signal.wait(timeout, seen)

    def stop(self) -> None:
        """End `run` promptly: after the batch in hand, or at once if it is waiting."""
        self._stopped.set()
        self._store.appended.notify()  # wakes the wait for appends; other followers just re-read

    def _backoff(self, failures: int) -> float:
        # Exponential and capped, with jitter so that followers failing together spread out.
        base = min(self._max_backoff, self._first_backoff * 2.0 ** min(failures - 1, 32))
        return base * random.uniform(0.5, 1.0)


def _what(after: int | None, batch: list[RecordedEvent]) -> str:
    """What was being done when a failure struck: ids and positions only, never payloads."""
    if after is None:
        return "reading the checkpoint"
    if not batch:
        return f"reading, or idle work, after position {after}"
    first, last = batch[0], batch[-1]
    return (
        f"events {first.global_position}..{last.global_position}"
        f" (first id {first.event_id}, last id {last.event_id})"
    )
