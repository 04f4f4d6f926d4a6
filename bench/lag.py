"""End-to-end lag at a fixed offered rate: a command acknowledged -> its events in the views.

Commands are sent open loop (at their scheduled instant, however many are still in flight), as
desks and gateways send them. An event is visible once every projection's checkpoint in the view
store has reached its global position: GetTimeline (and the case views) then show it.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import grpc

from bench.credentials import ClientAccess
from bench.grpc_load import note_request, percentile
from crm.v1 import case_service_pb2_grpc
from projections.catalogue import PROJECTION_NAMES
from projections.store.port import ViewStore


@dataclass
class Lag:
    """Lags (seconds) of acknowledged commands, the rate achieved and the calls refused."""

    offered: int
    achieved: float = 0.0
    lags: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    unseen: int = 0
    first_error: str = ""

    @property
    def p50(self) -> float:
        return percentile(self.lags, 50)

    @property
    def p99(self) -> float:
        return percentile(self.lags, 99)


class CheckpointWatch:
    """A thread noting when the slowest projection's checkpoint moved, and to where."""

    def __init__(self, views: ViewStore) -> None:
        self._views = views
        self.times: list[float] = []
        self.positions: list[int] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-lag", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            position = min(self._views.checkpoint(name) for name in PROJECTION_NAMES)
            if not self.positions or position != self.positions[-1]:
                self.times.append(time.perf_counter())
                self.positions.append(position)
            self._views.wait_for_change(0.002)

    def reached(self, position: int) -> float | None:
        """When the checkpoint first reached `position`, if it has."""
        index = bisect.bisect_left(self.positions, position)
        return self.times[index] if index < len(self.positions) else None

    def stop(self) -> None:
        self._done.set()
        self._thread.join(5)


class Visibility(Protocol):
    """When an acknowledged event became visible: CheckpointWatch, or kafka_lag's TimelineWatch."""

    def reached(self, position: int) -> float | None: ...

    def stop(self) -> None: ...


async def offered_load(
    server: ClientAccess,
    views: ViewStore,
    rate: int,
    seconds: float,
    cases: list[str],
    run: str,
    watch: Callable[[ViewStore], Visibility] = CheckpointWatch,
) -> Lag:
    """Send AddNote at `rate` per second for `seconds`; the lag of each acknowledged one."""
    result = Lag(offered=rate)
    acks: list[tuple[float, int]] = []
    visible = watch(views)
    async with server.aio_channel() as channel:
        stub = case_service_pb2_grpc.CaseServiceStub(channel)

        async def send(i: int) -> None:
            try:
                reply = await stub.AddNote(note_request(cases[i % len(cases)], f"{run}-{i}"))
            except grpc.aio.AioRpcError as error:
                result.errors[error.code().name] += 1
                result.first_error = result.first_error or str(error.details())
            else:
                acks.append((time.perf_counter(), reply.global_position))

        total = int(rate * seconds)
        started = time.perf_counter()
        tasks = []
        for i in range(total):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(send(i)))
        await asyncio.gather(*tasks)
        result.achieved = len(acks) / (time.perf_counter() - started)
    # Every acknowledged event, not only the last: through Kafka, partitions are applied in no
    # common order, so the last position can show before an earlier one.
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline and any(
        visible.reached(position) is None for _, position in acks
    ):
        await asyncio.sleep(0.05)
    visible.stop()
    for acked, position in acks:
        seen = visible.reached(position)
        if seen is None:
            result.unseen += 1
        else:
            result.lags.append(max(0.0, seen - acked))
    return result
