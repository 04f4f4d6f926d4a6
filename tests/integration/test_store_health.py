"""Health follows the stores: a server whose PostgreSQL is away reports its services NOT_SERVING,
and SERVING again once the database is back, while the server as a whole stays SERVING."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer as AsyncHealthServicer

from bench.server_thread import ServerThread
from crm.errors import OperationalError
from crm.settings import Settings
from services import store_health
from services.bootstrap import build_system
from services.store_health import StoreHealth
from tests.grpc_client import poll
from tests.postgres_server import PostgresServer, load_local_postgres

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Probe:
    """A probe that fails while `down` is set."""

    def __init__(self) -> None:
        self.down = False

    async def __call__(self) -> None:
        if self.down:
            raise OperationalError("the database is not answering")


async def _status(health: AsyncHealthServicer, name: str) -> int:
    reply = await health.Check(health_pb2.HealthCheckRequest(service=name), None)
    return int(reply.status)


def test_each_probe_reports_the_stores_state_and_a_store_lost_for_good_stays_lost() -> None:
    async def story() -> None:
        health = AsyncHealthServicer()
        for name in ("", "crm.v1.CaseService"):
            await health.set(name, SERVING)
        probe = Probe()
        watch = StoreHealth(health, ["crm.v1.CaseService"], probe)

        probe.down = True
        await watch.check()
        assert await _status(health, "crm.v1.CaseService") == NOT_SERVING
        assert await _status(health, "") == SERVING  # alive: no restart would help

        probe.down = False
        await watch.check()
        assert await _status(health, "crm.v1.CaseService") == SERVING

        watch.lost_for_good = True
        await health.set("crm.v1.CaseService", NOT_SERVING)
        await watch.check()
        probe.down = True
        await watch.check()
        probe.down = False
        await watch.check()
        assert await _status(health, "crm.v1.CaseService") == NOT_SERVING

    asyncio.run(story())


def test_a_busy_server_stays_serving_while_its_store_threads_are_all_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A probe queued behind the calls would time out (here after 1 s) and say NOT_SERVING.
    monkeypatch.setattr(store_health, "PROBE_TIMEOUT_SECONDS", 1.0)
    monkeypatch.setattr(store_health, "PROBE_EVERY_SECONDS", 0.2)
    system = build_system(
        Settings.defaults(data_dir=tmp_path, in_process_projector=False, in_process_deadlines=False)
    )
    server = ServerThread(system, services=("case",), store_threads=2)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    health = health_pb2_grpc.HealthStub(channel)
    try:
        busy = [
            asyncio.run_coroutine_threadsafe(server.server._io.run(time.sleep, 4.0), server.loop)
            for _ in range(2)
        ]
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:
            reply = health.Check(
                health_pb2.HealthCheckRequest(service="crm.v1.CaseService"), timeout=10
            )
            assert reply.status == SERVING
            time.sleep(0.2)
        for call in busy:
            call.result(timeout=10)
    finally:
        channel.close()
        server.stop()
        system.close()


@pytest.fixture
def own_server() -> Iterator[PostgresServer]:
    server: PostgresServer = load_local_postgres().LocalPostgres()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_server_on_postgresql_is_not_serving_while_the_database_is_away(
    own_server: PostgresServer, tmp_path: Path
) -> None:
    settings = Settings.defaults(
        data_dir=tmp_path,
        event_store_url=own_server.url,
        read_store_url=own_server.url,
        in_process_deadlines=False,
    )
    system = build_system(settings)
    server = ServerThread(system, services=("case",))
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    health = health_pb2_grpc.HealthStub(channel)

    def status(name: str) -> int:
        reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
        return int(reply.status)

    try:
        assert status("crm.v1.CaseService") == SERVING
        own_server.kill()
        poll(lambda: status("crm.v1.CaseService") == NOT_SERVING, timeout=60)
        assert status("") == SERVING
        own_server.start()
        poll(lambda: status("crm.v1.CaseService") == SERVING, timeout=90)
    finally:
        channel.close()
        server.stop()
        system.close()
