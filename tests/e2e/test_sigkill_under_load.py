"""SIGKILL while group commits are in flight: every acknowledged command survives, none doubles.

Sixteen callers add notes to cases of their own as fast as the server takes them, each keeping a
ledger of the request ids the server acknowledged. The server is killed mid-stream and started
again on the same files. Then every request is sent once more with its own id: an acknowledged
one must come back as a duplicate, and the store must hold exactly one note per request id.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from crm.envelope import verify_chain
from crm.eventstore.factory import open_event_store
from crm.v1 import (
    case_events_pb2,
    case_service_pb2,
    common_pb2,
    customer_events_pb2,
    customer_service_pb2,
)
from tests.grpc_client import Client, stamp
from tests.server_process import ServerProcess, event_store_flags

pytestmark = pytest.mark.e2e

CALLERS = 16
NOTE_TYPE = "crm.case.CaseNoteAdded.v1"


def _context(request_id: str) -> common_pb2.CommandContext:
    return common_pb2.CommandContext(
        request_id=request_id,
        occurred_at=stamp(datetime.now(UTC) - timedelta(minutes=1)),
        actor=common_pb2.Actor(kind=common_pb2.ACTOR_KIND_AGENT, id="agent-1"),
    )


def _note(case_id: str, request_id: str) -> case_service_pb2.AddNoteRequest:
    return case_service_pb2.AddNoteRequest(
        context=_context(request_id), case_id=case_id, text="called back"
    )


class Caller(threading.Thread):
    """Adds notes to one case until the server goes away; the ledger holds what was acked."""

    def __init__(self, client: Client, case_id: str, number: int) -> None:
        super().__init__(daemon=True)
        self.client, self.case_id, self.number = client, case_id, number
        self.sent: list[str] = []
        self.acknowledged: list[str] = []

    def run(self) -> None:
        for i in range(100_000):
            request_id = f"note-{self.number}-{i}"
            self.sent.append(request_id)
            try:
                self.client.cases.AddNote(_note(self.case_id, request_id), timeout=10)
            except grpc.RpcError:
                return  # the server was killed: this one may or may not have been recorded
            self.acknowledged.append(request_id)


def test_sigkill_during_group_commits_loses_and_doubles_nothing(
    tmp_path: Path, event_store_url: str | None
) -> None:
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, tmp_path / "first.log", *event_store_flags(event_store_url))
    client = Client(server.access)
    customer_id = client.customers.RegisterCustomer(
        customer_service_pb2.RegisterCustomerRequest(
            context=_context("register"),
            name="Mika Ono",
            language="ja",
            segment=customer_events_pb2.SEGMENT_B2C,
        )
    ).aggregate_id
    cases = [
        client.cases.OpenCase(
            case_service_pb2.OpenCaseRequest(
                context=_context(f"open-{n}"),
                customer_id=customer_id,
                channel=common_pb2.CHANNEL_PHONE,
                category=case_events_pb2.CATEGORY_CONTRACT,
                subject="Renewal",
            )
        ).aggregate_id
        for n in range(CALLERS)
    ]
    callers = [Caller(client, case_id, n) for n, case_id in enumerate(cases)]
    for caller in callers:
        caller.start()
    deadline = time.monotonic() + 30
    while sum(len(c.acknowledged) for c in callers) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()
    for caller in callers:
        caller.join(timeout=30)
    client.close()
    acknowledged = [rid for caller in callers for rid in caller.acknowledged]
    assert len(acknowledged) >= 200, "the callers never got going"

    again = ServerProcess(data_dir, tmp_path / "second.log", *event_store_flags(event_store_url))
    client = Client(again.access)
    try:
        for caller in callers:
            for request_id in caller.sent:  # a retry of everything, with the same ids
                result = client.cases.AddNote(_note(caller.case_id, request_id), timeout=30)
                if request_id in caller.acknowledged:
                    assert result.duplicate_request, f"{request_id} was acknowledged but lost"
    finally:
        client.close()
        assert again.terminate() == 0

    store = open_event_store(event_store_url or f"sqlite:///{data_dir / 'events.db'}")
    try:
        for caller in callers:
            stream = store.read_stream(f"case-{caller.case_id}")
            verify_chain(stream)
            notes = Counter(e.metadata.request_id for e in stream if e.type == NOTE_TYPE)
            assert set(notes) == set(caller.sent), "a note is missing or foreign"
            assert max(notes.values()) == 1, "a request was recorded twice"
    finally:
        store.close()
