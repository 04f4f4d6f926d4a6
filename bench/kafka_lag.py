"""End-to-end lag through Kafka: a command acknowledged -> its entry readable by GetTimeline.

Runs the distributed shape as `make run-distributed` starts it (a local broker, the server with
its in-process projector and deadline process off, the relay, one worker per projection, the
deadline worker), sends AddNote at fixed offered rates, and notes when each acknowledged note's
timeline entry appears in the view store the workers write. Needs Java and Maven, as the Kafka
tests do; without them the rows say so instead of a figure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.credentials import ClientAccess
from bench.lag import Lag, offered_load
from crm.settings import Settings
from crm.tokens import DEV_KEY_FILE
from crm.v1 import (
    case_events_pb2,
    case_service_pb2,
    case_service_pb2_grpc,
    common_pb2,
    customer_events_pb2,
    customer_service_pb2,
    customer_service_pb2_grpc,
)
from projections.store.factory import open_view_store
from projections.store.port import ViewStore

ROOT = Path(__file__).resolve().parent.parent
UP_LINE = "distributed system up"


def missing_tools() -> list[str]:
    """What a local broker needs and this machine lacks."""
    return [tool for tool in ("java", "mvn") if shutil.which(tool) is None]


class TimelineWatch:
    """A thread noting when each global position first became readable on a timeline.

    It follows the order entries were written (`writers_after`), reads the new entries of each
    timeline touched, and keeps the instant it saw each entry's position.
    """

    def __init__(self, views: ViewStore) -> None:
        self._views = views
        self._seen: dict[int, float] = {}
        self._sequence = views.timeline_watermark()
        self._read_to: dict[str, int] = {}
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="bench-kafka-lag", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            writers = self._views.writers_after(self._sequence, 5_000)
            touched = {customer for _, customer, _ in writers}
            if writers:
                self._sequence = writers[-1][0]
            for customer in touched:
                after = self._read_to.get(customer, 0)
                entries, last = self._views.entries_applied_after(customer, after, 5_000)
                now = time.perf_counter()
                with self._lock:
                    for entry in entries:
                        self._seen.setdefault(entry.global_position, now)
                self._read_to[customer] = last
            self._views.wait_for_change(0.002)

    def reached(self, position: int) -> float | None:
        """When the entry at `position` was first seen, if it was."""
        with self._lock:
            return self._seen.get(position)

    def stop(self) -> None:
        self._done.set()
        self._thread.join(5)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def distributed(data_dir: Path) -> Iterator[tuple[ClientAccess, Settings]]:
    """The distributed shape on free ports: (how to reach its server, the settings it runs with).

    The server runs with the defaults: the key and certificate it makes in the data dir."""
    data_dir.mkdir(parents=True, exist_ok=True)
    listen = f"127.0.0.1:{_free_port()}"
    env = {
        **os.environ,
        "CRM_DATA_DIR": str(data_dir),
        "CRM_LISTEN": listen,
        "CRM_KAFKA_PORT": str(_free_port()),
        # The bench is one caller sending for many desks: the server-wide limit applies, not
        # the per-caller one meant to keep callers from crowding each other out.
        "CRM_MAX_CALLS_PER_CALLER": "1000",
    }
    log = (data_dir / "processes.log").open("w")  # the processes' own logs, kept off the table
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "deploy" / "run_distributed.py")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if UP_LINE in line:
                break
        else:
            raise RuntimeError("the distributed system did not start")
        # The children start after that line: wait for the key and certificate the server makes
        # at its first start (both written whole, by a rename).
        made = (data_dir / DEV_KEY_FILE, data_dir / "tls" / "server.crt")
        deadline = time.monotonic() + 120
        while not all(path.exists() for path in made):
            if time.monotonic() > deadline or child.poll() is not None:
                raise RuntimeError("the distributed system's server made no key and certificate")
            time.sleep(0.1)
        access = ClientAccess.of_data_dir(listen, data_dir)
        yield access, Settings.defaults(data_dir=data_dir, listen=listen)
    finally:
        child.terminate()
        try:
            child.wait(60)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        log.close()


def _context(request_id: str) -> common_pb2.CommandContext:
    occurred = Timestamp()
    occurred.FromDatetime(datetime.now(UTC))
    return common_pb2.CommandContext(
        request_id=request_id,
        occurred_at=occurred,
        actor=common_pb2.Actor(kind=common_pb2.ACTOR_KIND_AGENT, id="agent-1"),
    )


async def _serving(channel: grpc.aio.Channel, timeout: float = 120) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=2)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.aio.AioRpcError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


async def open_cases_over_grpc(server: ClientAccess, customers: int, cases: int) -> list[str]:
    """Register customers and open cases through the API (the server runs in another process)."""
    async with server.aio_channel() as channel:
        await _serving(channel)
        customer_stub = customer_service_pb2_grpc.CustomerServiceStub(channel)
        case_stub = case_service_pb2_grpc.CaseServiceStub(channel)
        ids = []
        for c in range(customers):
            reply = await customer_stub.RegisterCustomer(
                customer_service_pb2.RegisterCustomerRequest(
                    context=_context(f"kl-reg-{c}"),
                    name="Bench",
                    language="en",
                    segment=customer_events_pb2.SEGMENT_B2C,
                )
            )
            ids.append(reply.aggregate_id)
        opened = []
        for k in range(cases):
            reply = await case_stub.OpenCase(
                case_service_pb2.OpenCaseRequest(
                    context=_context(f"kl-open-{k}"),
                    customer_id=ids[k % customers],
                    channel=common_pb2.CHANNEL_EMAIL,
                    category=case_events_pb2.CATEGORY_USAGE_QUESTION,
                    priority=common_pb2.PRIORITY_LOW,
                    subject="s",
                )
            )
            opened.append(reply.aggregate_id)
        return opened


async def kafka_lags(data_dir: Path, rates: tuple[int, ...], seconds: float) -> list[Lag]:
    """The lag through Kafka at each offered rate, after a warm-up that lets the workers join."""
    with distributed(data_dir) as (target, settings):
        cases = await open_cases_over_grpc(target, 64, 256)
        views = open_view_store(settings.read_store_url)
        try:
            # Workers join their consumer groups and catch up on the cases just opened: the
            # warm-up waits until the first notes show, so no rate pays for the start.
            await offered_load(target, views, 20, 2.0, cases, "kl-warm", watch=TimelineWatch)
            lags = []
            for rate in rates:
                lags.append(
                    await offered_load(
                        target, views, rate, seconds, cases * 4, f"kl{rate}", watch=TimelineWatch
                    )
                )
            return lags
        finally:
            views.close()
