"""The event store file removed or replaced under a running server: refused, not acknowledged.

An open SQLite connection keeps writing to the file it opened, so without a check every command
would be acknowledged into a file nobody reads again. Through gRPC: commands get UNAVAILABLE and
health turns NOT_SERVING.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.server_thread import ServerThread
from crm.settings import Settings
from crm.v1 import common_pb2, customer_events_pb2, customer_service_pb2
from services.bootstrap import build_system, report_store_health
from tests.grpc_client import Client, poll

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[tuple[Client, Path]]:
    settings = Settings.defaults(data_dir=tmp_path, in_process_projector=False)
    system = build_system(settings)
    server = ServerThread(system)
    report_store_health(system, server.server)
    client = Client(server.access, prefix="lost")
    yield client, tmp_path / "events.db"
    client.close()
    server.stop(1)
    system.close()


def _register(client: Client, request_id: str) -> common_pb2.CommandResult:
    return client.customers.RegisterCustomer(
        customer_service_pb2.RegisterCustomerRequest(
            context=client.context(request_id),
            name="Aiko Tanaka",
            language="ja",
            segment=customer_events_pb2.SEGMENT_B2C,
        ),
        timeout=10,
    )


def _health(client: Client) -> int:
    stub = health_pb2_grpc.HealthStub(client.channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    return int(reply.status)


def _remove(events_db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{events_db}{suffix}").unlink(missing_ok=True)


def _replace(events_db: Path) -> None:
    copy = events_db.with_name("events.db.copy")
    shutil.copyfile(events_db, copy)
    os.replace(copy, events_db)


def _recorded(events_db: Path, request_id: str) -> int:
    if not events_db.exists():
        return 0
    with sqlite3.connect(events_db) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM events WHERE json_extract(metadata, '$.request_id') = ?",
            (request_id,),
        ).fetchone()
    return int(row[0])


@pytest.mark.parametrize("lose", [_remove, _replace], ids=["removed", "replaced"])
def test_a_lost_store_file_refuses_commands_and_health_says_not_serving(
    serving: tuple[Client, Path], lose: Callable[[Path], None]
) -> None:
    client, events_db = serving
    assert _register(client, "before").aggregate_id
    assert _health(client) == SERVING

    lose(events_db)

    for attempt in ("after-1", "after-2"):
        with pytest.raises(grpc.RpcError) as refused:
            _register(client, attempt)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        assert "events.db" in (refused.value.details() or "")
        assert _recorded(events_db, attempt) == 0
    poll(lambda: _health(client) == NOT_SERVING)
