"""Two `crm-server` processes on one store, both sealing: the seals they keep form one chain (no
fork, no conflicting seal at a position), cover every event, and the whole store verifies."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crm.v1 import audit_service_pb2, customer_events_pb2, customer_service_pb2
from tests.grpc_client import Client, poll
from tests.server_process import ServerProcess

SEALING = ("--seal-every-events", "1", "--seal-every-seconds", "0")


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    first = ServerProcess(tmp_path, tmp_path / "first.log", *SEALING)
    try:
        second = ServerProcess(
            tmp_path,
            tmp_path / "second.log",
            *SEALING,
            *("--projector", "off", "--deadlines", "off"),  # one projector for the shared views
        )
    except BaseException:
        first.terminate()
        raise
    try:
        yield first, second
    finally:
        for server in (first, second):
            server.terminate()


def test_two_sealing_servers_keep_one_chain_of_seals(
    servers: tuple[ServerProcess, ServerProcess],
) -> None:
    clients = [Client(server.access, prefix=f"s{n}") for n, server in enumerate(servers)]
    try:
        for n in range(20):
            client = clients[n % 2]
            client.customers.RegisterCustomer(
                customer_service_pb2.RegisterCustomerRequest(
                    context=client.context(),
                    name=f"Customer {n}",
                    language="ja",
                    segment=customer_events_pb2.SEGMENT_B2C,
                )
            )

        def all_sealed() -> list[audit_service_pb2.Seal] | None:
            seals = list(clients[0].audit.ListSeals(audit_service_pb2.ListSealsRequest()).seals)
            return seals if seals and seals[-1].count == 20 else None

        seals = poll(all_sealed, timeout=30)
        assert [s.previous_position for s in seals] == [0, *(s.position for s in seals[:-1])]
        assert len({s.position for s in seals}) == len(seals)
        for client in clients:  # each server checks with the one shared key
            reply = client.audit.VerifyStore(audit_service_pb2.VerifyStoreRequest())
            assert reply.ok and reply.exact, reply.breaks
            assert (reply.sealed_events, reply.seal.position) == (20, seals[-1].position)
    finally:
        for client in clients:
            client.close()
