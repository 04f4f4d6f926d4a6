"""ChangeSignal.wait_async: a notify from any thread wakes waiting coroutines; none is lost."""

from __future__ import annotations

import asyncio
import threading

from crm.notify import ChangeSignal


def test_a_notify_from_another_thread_wakes_every_waiter_on_the_loop() -> None:
    signal = ChangeSignal()

    async def scenario() -> list[int]:
        seen = signal.generation
        waiters = [asyncio.create_task(signal.wait_async(30, seen)) for _ in range(50)]
        while signal.async_waiters < 50:
            await asyncio.sleep(0.01)
        threading.Thread(target=signal.notify).start()
        return await asyncio.wait_for(asyncio.gather(*waiters), 10)

    assert asyncio.run(scenario()) == [1] * 50
    assert signal.async_waiters == 0


def test_a_notify_before_the_wait_is_not_lost_when_the_generation_is_passed() -> None:
    signal = ChangeSignal()
    seen = signal.generation
    signal.notify()  # while the follower was reading

    async def wait() -> int:
        return await asyncio.wait_for(signal.wait_async(30, seen), 5)

    assert asyncio.run(wait()) == 1


def test_without_a_notify_the_wait_ends_at_its_timeout() -> None:
    signal = ChangeSignal()

    async def wait() -> int:
        return await signal.wait_async(0.05)

    assert asyncio.run(wait()) == 0
    assert signal.async_waiters == 0


def test_cancelling_a_waiter_leaves_nothing_registered() -> None:
    signal = ChangeSignal()

    async def scenario() -> None:
        waiter = asyncio.create_task(signal.wait_async(30))
        while signal.async_waiters < 1:
            await asyncio.sleep(0.01)
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)

    asyncio.run(scenario())
    assert signal.async_waiters == 0
    signal.notify()  # nobody left to wake; must not fail


def test_waiters_on_two_loops_are_each_woken_on_their_own_loop() -> None:
    signal = ChangeSignal()
    seen = signal.generation
    results: list[int] = []
    ready = threading.Barrier(3)

    def follower() -> None:
        async def wait() -> int:
            task = asyncio.create_task(signal.wait_async(30, seen))
            await asyncio.sleep(0)
            ready.wait()
            return await asyncio.wait_for(task, 10)

        results.append(asyncio.run(wait()))

    threads = [threading.Thread(target=follower) for _ in range(2)]
    for thread in threads:
        thread.start()
    ready.wait()
    signal.notify()
    for thread in threads:
        thread.join(10)
    assert results == [1, 1]
