"""Blocking work (store and view-store I/O) off the event loop, on a bounded pool of threads.

An asyncio server must never block its loop: SQLite calls, fsyncs and folds run here instead. The
bound caps how much blocking work runs at once and how many store connections exist (one per
thread, crm/sqlite_connections.py); calls beyond it queue in order, on no thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


class BlockingPool:
    """A fixed number of threads that async code hands its blocking calls to."""

    def __init__(self, threads: int, name: str = "blocking") -> None:
        if threads < 1:
            raise ValueError(f"a blocking pool needs at least one thread, not {threads}")
        self.threads = threads
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)

    async def run(self, function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Call `function` on a pool thread and await its result.

        It runs in a copy of the caller's contextvars, so what an interceptor put there (who is
        calling, a correlation id) is seen by the code it calls. Cancelling the awaiting task does
        not stop a call already running: a command that started still commits or fails whole.
        """
        call = functools.partial(contextvars.copy_context().run, function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def shutdown(self) -> None:
        """Refuse new calls, drop queued ones, and wait until the running ones have returned."""
        self._executor.shutdown(wait=True, cancel_futures=True)
