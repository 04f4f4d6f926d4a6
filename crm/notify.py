"""A change signal between threads of one process: writers notify, followers wake without polling.

Changes made by other processes reach it only through a doorbell (crm/doorbell.py) where one is
attached; followers bound every wait with a timeout and re-read anyway, so a signal only makes
them faster, never correct. Each notify bumps a generation: a
follower that passes the generation it last saw cannot miss a notify made while it was reading.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class ChangeSignal:
    """Wake every waiting thread when something changed."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0
        self._observers: list[Callable[[], None]] = []

    @property
    def generation(self) -> int:
        """How many notifies happened so far."""
        with self._condition:
            return self._generation

    def observe(self, callback: Callable[[], None]) -> None:
        """Also call `callback` after each notify of this process (e.g. to ring other processes)."""
        self._observers.append(callback)

    def notify(self) -> None:
        """Wake all waiters, and tell the observers; call it after a change is committed."""
        self.notify_here()
        for callback in self._observers:
            callback()

    def notify_here(self) -> None:
        """Wake the waiters of this process only (what a ring from another process does)."""
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def wait(self, timeout: float, seen: int | None = None) -> int:
        """Block until a notify after generation `seen` (default: now) or the timeout.

        Returns the current generation, to pass as `seen` to the next wait.
        """
        with self._condition:
            start = self._generation if seen is None else seen
            self._condition.wait_for(lambda: self._generation != start, timeout)
            return self._generation
