"""History altered behind the system's back is noticed on use: DATA_LOSS, an alert, no append.

A command loads its stream's events after its cached state (all of them on a cold start) and
checks their hash chain before deciding; a broken one refuses the command, names the first bad
event, and leaves the stream as it found it. Other streams keep working. The same on SQLite and
on PostgreSQL: a row altered in either store is found alike.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from bench.server_thread import ServerThread
from crm.v1 import (
    case_service_pb2,
)
from services.bootstrap import System, build_system
from tests.grpc_client import Client
from tests.raw_stores import BACKENDS, Backend, backend_for


def _note(client: Client, case_id: str) -> case_service_pb2.AddNoteRequest:
    return case_service_pb2.AddNoteRequest(
        context=client.context(), case_id=case_id, text="called back"
    )


@dataclass
class Serving:
    system: System
    server: ServerThread
    client: Client

    def stop(self) -> None:
        self.client.close()
        self.server.stop()
        self.system.close()


def _serve(stores: Backend, prefix: str) -> Serving:
    system = build_system(stores.settings(in_process_projector=False, in_process_deadlines=False))
    assert stores.serves(system.store)
    server = ServerThread(system)
    return Serving(system, server, Client(server.access, prefix=prefix))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """The test's stores: SQLite files, then PostgreSQL databases (altered alike)."""
    return backend_for(request, tmp_path)


@pytest.mark.parametrize("altered_revision", [1, 2])
def test_a_command_on_an_altered_stream_is_refused_with_data_loss(
    backend: Backend, altered_revision: int, caplog: pytest.LogCaptureFixture
) -> None:
    first = _serve(backend, "first")
    client = first.client
    case_id = client.customer_with_a_case("Ren")
    other_case = client.customer_with_a_case("Ren")
    client.cases.AddNote(_note(client, case_id))
    client.cases.AddNote(_note(client, case_id))
    first.stop()
    backend.execute(
        "UPDATE events SET data = ? WHERE stream = ? AND revision = ?",
        "",
        b'{"text": "rewritten"}',
        f"case-{case_id}",
        altered_revision,
    )
    ((before,),) = backend.execute("SELECT COUNT(*) FROM events")

    second = _serve(backend, "second")  # a cold start: the whole stream is loaded and checked
    client = second.client
    try:
        with caplog.at_level(logging.ERROR), pytest.raises(grpc.RpcError) as refused:
            client.cases.AddNote(_note(client, case_id))
        assert refused.value.code() is grpc.StatusCode.DATA_LOSS
        details = refused.value.details() or ""
        assert f"case-{case_id} is broken at revision {altered_revision}" in details
        assert "content was altered" in details
        assert any("ALERT broken history" in r.getMessage() for r in caplog.records)
        client.cases.AddNote(_note(client, other_case))  # other streams keep working
    finally:
        second.stop()
    ((after,),) = backend.execute("SELECT COUNT(*) FROM events")
    assert after == before + 1  # the other case's note, nothing on the broken stream
