"""A change signal between threads of one process: writers notify, followers wake without polling.

Changes made by other processes are not signalled; followers bound every wait with a timeout and
re-read, so a signal only makes them faster, never correct. Each notify bumps a generation: a
follower that passes the generation it last saw cannot miss a notify made while it was reading.
"""

from __future__ import annotations

import threading


class ChangeSignal:
    """Wake every waiting thread when something changed."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0

    @property
    def generation(self) -> int:
        """How many notifies happened so far."""
        with self._condition:
            return self._generation

    def notify(self) -> None:
        """Wake all waiters; call it after a change is committed."""
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
