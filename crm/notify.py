"""A change signal between threads of one process: writers notify, followers wake without polling.

Changes made by other processes reach it only through a doorbell (crm/doorbell.py) where one is
attached; followers bound every wait with a timeout and re-read anyway, so a signal only makes
them faster, never correct. Each notify bumps a generation: a
follower that passes the generation it last saw cannot miss a notify made while it was reading.
Followers on an asyncio event loop await `wait_async`, which holds no thread while it waits.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable
from contextlib import suppress


class ChangeSignal:
    """Wake every waiting thread when something changed."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0
        self._observers: list[Callable[[], None]] = []
        # Waiters of wait_async by their loop: a notify costs one wake-up call per loop.
        self._async_waiters: dict[asyncio.AbstractEventLoop, set[asyncio.Future[None]]] = {}

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
        self._wake_async_waiters()

    def wait(self, timeout: float, seen: int | None = None) -> int:
        """Block until a notify after generation `seen` (default: now) or the timeout.

        Returns the current generation, to pass as `seen` to the next wait.
        """
        with self._condition:
            start = self._generation if seen is None else seen
            self._condition.wait_for(lambda: self._generation != start, timeout)
            return self._generation

    async def wait_async(self, timeout: float, seen: int | None = None) -> int:
        """`wait` for asyncio code: awaits on the running loop, holding no thread while it waits.

        Returns the current generation, to pass as `seen` to the next wait. Cancelling the
        awaiting task removes the waiter at once.
        """
        loop = asyncio.get_running_loop()
        with self._condition:
            start = self._generation if seen is None else seen
            if self._generation != start:
                return self._generation
            woken = loop.create_future()
            self._async_waiters.setdefault(loop, set()).add(woken)
        timer = loop.call_later(timeout, _wake, (woken,))
        try:
            await woken
        finally:
            timer.cancel()
            with self._condition:
                waiting = self._async_waiters.get(loop)
                if waiting is not None:
                    waiting.discard(woken)
                    if not waiting:
                        del self._async_waiters[loop]
        return self.generation

    @property
    def async_waiters(self) -> int:
        """How many wait_async calls are waiting now (a cancelled watch leaves none behind)."""
        with self._condition:
            return sum(len(waiting) for waiting in self._async_waiters.values())

    def _wake_async_waiters(self) -> None:
        with self._condition:
            waiting, self._async_waiters = self._async_waiters, {}
        for loop, futures in waiting.items():
            with suppress(RuntimeError):  # that loop is closed: nobody is left to wake
                loop.call_soon_threadsafe(_wake, futures)


def _wake(futures: Iterable[asyncio.Future[None]]) -> None:
    """Runs on the waiters' loop: resolve each future not already resolved or cancelled."""
    for future in futures:
        if not future.done():
            future.set_result(None)
