"""BlockingPool: blocking calls leave the event loop, at most `threads` at once, in the caller's
context."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from crm.blocking import BlockingPool

CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="nobody")


def test_calls_run_off_the_loop_thread_and_see_the_callers_context() -> None:
    pool = BlockingPool(2)

    async def scenario() -> tuple[str, str]:
        CALLER.set("agent-7")
        return await pool.run(lambda: (threading.current_thread().name, CALLER.get()))

    loop_thread = threading.current_thread().name
    thread, caller = asyncio.run(scenario())
    pool.shutdown()
    assert thread != loop_thread
    assert caller == "agent-7"


def test_no_more_than_the_bound_run_at_once_and_the_rest_queue() -> None:
    pool = BlockingPool(3)
    lock = threading.Lock()
    running = peak = 0
    release = threading.Event()

    def blocking_call() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        release.wait(10)
        with lock:
            running -= 1

    async def scenario() -> None:
        calls = [asyncio.create_task(pool.run(blocking_call)) for _ in range(10)]
        while running < 3:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert running == 3
        release.set()
        await asyncio.wait_for(asyncio.gather(*calls), 10)

    asyncio.run(scenario())
    pool.shutdown()
    assert peak == 3


def test_a_pool_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        BlockingPool(0)
