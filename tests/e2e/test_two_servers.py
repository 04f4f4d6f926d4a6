"""Two gRPC servers on one event store take commands for the same case at the same time.

Inside one server, commands on a stream queue; across servers they meet at the store, which
takes one append per expected revision. The losing server decides again on the new revision (and
answers ABORTED only if the stream keeps changing); a caller that retries with the same request
id gets its command in exactly once, wherever it lands.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
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
from tests.grpc_client import Client, poll
from tests.server_process import ServerProcess

pytestmark = pytest.mark.e2e

CALLERS_PER_SERVER = 4
NOTES_PER_CALLER = 10
RETRIES = 50


@pytest.fixture
def event_store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"


@pytest.fixture
def servers(tmp_path: Path, event_store_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    first = ServerProcess(tmp_path, tmp_path / "first.log", "--event-store-url", event_store_url)
    second = ServerProcess(
        tmp_path,
        tmp_path / "second.log",
        *("--event-store-url", event_store_url),
        *("--projector", "off", "--deadlines", "off"),  # one projector for the shared views
    )
    yield first, second
    for server in (first, second):
        server.terminate()


Sent = dict[str, tuple[case_service_pb2.AddNoteRequest, int]]


def _add_notes(client: Client, case_id: str, prefix: str, aborted: list[int], sent: Sent) -> None:
    """Add notes one after another, retrying each refused one with its own request id."""
    for n in range(NOTES_PER_CALLER):
        request = case_service_pb2.AddNoteRequest(
            context=client.context(f"{prefix}-{n}"),
            case_id=case_id,
            note_id=f"{prefix}-{n}",
            text="called back",
        )
        for _ in range(RETRIES):
            try:
                reply = client.cases.AddNote(request)
                sent[request.note_id] = (request, reply.global_position)
                break
            except grpc.RpcError as error:
                if error.code() is not grpc.StatusCode.ABORTED:
                    raise
                aborted.append(n)
        else:
            raise AssertionError(f"{prefix}-{n} was refused {RETRIES} times")


def test_two_servers_take_commands_on_one_case_exactly_once(
    servers: tuple[ServerProcess, ServerProcess], event_store_url: str
) -> None:
    first, second = Client(servers[0].target, "a"), Client(servers[1].target, "b")
    customer = first.customers.RegisterCustomer(
        customer_service_pb2.RegisterCustomerRequest(
            context=first.context(),
            name="Aoi",
            language="ja",
            segment=customer_events_pb2.SEGMENT_B2C,
        )
    ).aggregate_id
    case_id = first.cases.OpenCase(
        case_service_pb2.OpenCaseRequest(
            context=first.context(),
            customer_id=customer,
            channel=common_pb2.CHANNEL_CHAT,
            category=case_events_pb2.CATEGORY_BILLING_PAYMENT,
            priority=common_pb2.PRIORITY_NORMAL,
            subject="Two charges",
        )
    ).aggregate_id

    aborted: list[int] = []
    sent: Sent = {}
    writers = [
        threading.Thread(target=_add_notes, args=(client, case_id, f"{side}{k}", aborted, sent))
        for client, side in ((first, "a"), (second, "b"))
        for k in range(CALLERS_PER_SERVER)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)

    store = open_event_store(event_store_url)
    try:
        stream = store.read_stream(f"case-{case_id}")
        notes = [e.metadata.request_id for e in stream if e.type.endswith("CaseNoteAdded.v1")]
        expected = {
            f"{side}{k}-{n}"
            for side in "ab"
            for k in range(CALLERS_PER_SERVER)
            for n in range(NOTES_PER_CALLER)
        }
        assert sorted(notes) == sorted(expected)  # each once, none lost
        assert verify_chain(stream) == len(stream)

        # A retry of an acknowledged command at the other server appends nothing and answers
        # as the first time; the same request id on another command is refused.
        before = store.last_position()
        request, position = sent["a0-3"]
        assert second.cases.AddNote(request).global_position == position
        other = case_service_pb2.AddNoteRequest()
        other.CopyFrom(request)
        other.text = "another text"
        with pytest.raises(grpc.RpcError) as refused:
            second.cases.AddNote(other)
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert store.last_position() == before
    finally:
        store.close()

    # The one projector shows every note on the timeline, whichever server took it.
    def notes_shown() -> bool:
        entries = first.whole_timeline(customer)
        return sum(e.event_type.endswith("CaseNoteAdded.v1") for e in entries) == len(expected)

    poll(notes_shown, timeout=60)
    first.close()
    second.close()
