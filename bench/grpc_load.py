"""gRPC measurements: command throughput beside echo, latency by stream length, a hot case, watches.

Callers are coroutines on one grpc.aio channel on the bench's own loop; every figure is taken
over the network stack against a server running on its own loop, as in production.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from bench.credentials import ClientAccess
from bench.servers import ECHO_METHOD
from crm.v1 import (
    case_service_pb2,
    case_service_pb2_grpc,
    common_pb2,
    timeline_service_pb2,
    timeline_service_pb2_grpc,
)

Call = Callable[[int, int], Awaitable[object]]
"""One call by caller `c`, its `i`th."""


def note_request(case_id: str, request_id: str) -> case_service_pb2.AddNoteRequest:
    """An AddNote as an agent's desktop sends it: now, by an agent, on an open case."""
    occurred = Timestamp()
    occurred.FromDatetime(datetime.now(UTC))
    context = common_pb2.CommandContext(
        request_id=request_id,
        occurred_at=occurred,
        actor=common_pb2.Actor(kind=common_pb2.ACTOR_KIND_AGENT, id="agent-1"),
    )
    return case_service_pb2.AddNoteRequest(
        context=context, case_id=case_id, note_id=request_id, text="called back"
    )


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile by nearest rank, in milliseconds (0 when there are none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))] * 1000


@dataclass
class Sample:
    """Latencies (seconds) of calls that returned, failures by status code, calls per second."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    per_second: float = 0.0

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies, 99)


async def closed_loop(callers: int, seconds: float, call: Call) -> Sample:
    """`callers` call one after another each until `seconds` pass."""
    sample = Sample()
    stop_at = time.perf_counter() + seconds

    async def caller(c: int) -> None:
        i = 0
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                await call(c, i)
            except grpc.aio.AioRpcError as error:
                sample.errors[error.code().name] += 1
            else:
                sample.latencies.append(time.perf_counter() - started)
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller(c) for c in range(callers)))
    sample.per_second = len(sample.latencies) / (time.perf_counter() - started)
    return sample


async def fixed_calls(callers: int, calls: int, call: Call) -> Sample:
    """`callers` make `calls` calls each, one after another."""
    sample = Sample()

    async def caller(c: int) -> None:
        for i in range(calls):
            started = time.perf_counter()
            try:
                await call(c, i)
            except grpc.aio.AioRpcError as error:
                sample.errors[error.code().name] += 1
            else:
                sample.latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(caller(c) for c in range(callers)))
    sample.per_second = len(sample.latencies) / (time.perf_counter() - started)
    return sample


async def echo_throughput(target: str, callers: int, seconds: float, payload: bytes) -> Sample:
    """Calls per second of the bare echo server, `callers` at a time."""
    async with grpc.aio.insecure_channel(target) as channel:
        echo = channel.unary_unary(ECHO_METHOD, None, None)

        async def call(c: int, i: int) -> object:
            return await echo(payload)

        await closed_loop(callers, min(seconds, 0.5), call)  # warm up
        return await closed_loop(callers, seconds, call)


async def command_throughput(
    server: ClientAccess, callers: int, seconds: float, cases: list[str], run: str
) -> Sample:
    """AddNote per second, `callers` at a time; each caller owns its cases, so none conflict."""
    async with server.aio_channel() as channel:
        stub = case_service_pb2_grpc.CaseServiceStub(channel)
        owned = [cases[c::callers] for c in range(callers)]

        async def call(c: int, i: int) -> object:
            mine = owned[c]
            return await stub.AddNote(note_request(mine[i % len(mine)], f"{run}-{c}-{i}"))

        await closed_loop(callers, min(seconds, 0.5), lambda c, i: call(c, -1 - i))
        return await closed_loop(callers, seconds, call)


async def command_latency(server: ClientAccess, case_id: str, calls: int, run: str) -> Sample:
    """One caller's AddNote latencies on one case."""
    async with server.aio_channel() as channel:
        stub = case_service_pb2_grpc.CaseServiceStub(channel)

        async def call(c: int, i: int) -> object:
            return await stub.AddNote(note_request(case_id, f"{run}-{i}"))

        await fixed_calls(1, 10, lambda c, i: call(c, -1 - i))  # warm up
        return await fixed_calls(1, calls, call)


async def hot_case(
    server: ClientAccess, case_id: str, callers: int, calls: int, run: str
) -> Sample:
    """`callers` adding notes to one case at once: conflicts show as ABORTED."""
    async with server.aio_channel() as channel:
        stub = case_service_pb2_grpc.CaseServiceStub(channel)

        async def call(c: int, i: int) -> object:
            return await stub.AddNote(note_request(case_id, f"{run}-{c}-{i}"))

        return await fixed_calls(callers, calls, call)


async def get_case_with_watches(
    server: ClientAccess, case_id: str, customers: list[str], watches: int, calls: int, after: int
) -> Sample:
    """GetCase latencies of one caller while `watches` idle WatchTimeline streams are open.

    The watches start after global position `after` (the store's end), so they send no history
    and only wait: what they cost the other calls is what holding them open costs.
    """
    async with server.aio_channel() as channel:
        cases = case_service_pb2_grpc.CaseServiceStub(channel)
        timeline = timeline_service_pb2_grpc.TimelineServiceStub(channel)
        streams = [
            timeline.WatchTimeline(
                timeline_service_pb2.WatchTimelineRequest(
                    customer_id=customers[w % len(customers)], after_position=after
                )
            )
            for w in range(watches)
        ]

        async def drain(stream: grpc.aio.UnaryStreamCall) -> None:  # type: ignore[type-arg]
            try:
                async for _ in stream:
                    pass
            except (grpc.aio.AioRpcError, asyncio.CancelledError):
                pass

        readers = [asyncio.create_task(drain(s)) for s in streams]
        await asyncio.sleep(2.0 if watches else 0.0)  # every watch has sent its history

        async def call(c: int, i: int) -> object:
            return await cases.GetCase(case_service_pb2.GetCaseRequest(case_id=case_id))

        await fixed_calls(1, 20, call)  # warm up
        sample = await fixed_calls(1, calls, call)
        for stream in streams:
            stream.cancel()
        await asyncio.gather(*readers)
        return sample


async def with_and_without(
    on: ClientAccess, off: ClientAccess, callers: int, seconds: float, cases: list[str], run: str
) -> tuple[Sample, Sample]:
    """The same AddNote load against a server that checks tokens (`on`) and one that does not
    (`off`), in alternating rounds so that drift of a loaded machine falls on both alike."""
    samples: dict[str, list[Sample]] = {"on": [], "off": []}
    for round_ in range(2):
        for name, access in (("off", off), ("on", on)):
            sample = await command_throughput(
                access, callers, seconds / 2, cases, f"{run}-{name}{round_}"
            )
            samples[name].append(sample)
    return _merged(samples["on"]), _merged(samples["off"])


def _merged(samples: list[Sample]) -> Sample:
    """Rounds of one load as one sample: all their latencies, their mean rate, all errors."""
    merged = Sample(per_second=sum(s.per_second for s in samples) / len(samples))
    for sample in samples:
        merged.latencies += sample.latencies
        merged.errors += sample.errors
    return merged
