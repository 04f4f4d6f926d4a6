"""A server told to serve some services serves those alone: calls, health and reflection agree."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from bench.server_thread import ServerThread
from crm.settings import Settings
from crm.v1 import case_service_pb2, common_pb2, customer_events_pb2, customer_service_pb2
from services.bootstrap import System, build_system
from tests.grpc_client import Client, poll

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def system(tmp_path: Path) -> Iterator[System]:
    built = build_system(
        Settings.defaults(data_dir=tmp_path, in_process_projector=False, in_process_deadlines=False)
    )
    yield built
    built.close()


def _register(client: Client) -> common_pb2.CommandResult:
    return client.customers.RegisterCustomer(
        customer_service_pb2.RegisterCustomerRequest(
            context=client.context(),
            name="Kenji Mori",
            language="ja",
            segment=customer_events_pb2.SEGMENT_B2C,
        )
    )


def _listed(channel: grpc.Channel) -> set[str]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (reply,) = list(stub.ServerReflectionInfo(iter([request])))
    return {service.name for service in reply.list_services_response.service}


def test_a_customer_server_answers_customer_calls_and_no_case_calls(system: System) -> None:
    with ServerThread(system, services=("customer",)) as server:
        client = Client(server.target, prefix="subset")
        try:
            registered = _register(client)
            assert registered.aggregate_id
            with pytest.raises(grpc.RpcError) as refused:
                client.cases.OpenCase(
                    case_service_pb2.OpenCaseRequest(
                        context=client.context(), customer_id=registered.aggregate_id
                    )
                )
            assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED
            with pytest.raises(grpc.RpcError) as unread:
                client.cases.GetCase(case_service_pb2.GetCaseRequest(case_id="k-1"))
            assert unread.value.code() is grpc.StatusCode.UNIMPLEMENTED
        finally:
            client.close()
    # Refused calls recorded nothing: the store holds the registration alone.
    assert [e.stream for e in system.store.read_all(0, 100)] == [
        f"customer-{registered.aggregate_id}"
    ]


def test_health_and_reflection_name_the_services_served_and_no_other(system: System) -> None:
    with ServerThread(system, services=("case", "timeline")) as server:
        channel = grpc.insecure_channel(server.target)
        try:
            health = health_pb2_grpc.HealthStub(channel)
            for name in ("", "crm.v1.CaseService", "crm.v1.TimelineService"):
                assert health.Check(health_pb2.HealthCheckRequest(service=name)).status == SERVING
            for name in ("crm.v1.CustomerService", "crm.v1.FeedbackService"):
                with pytest.raises(grpc.RpcError) as unknown:
                    health.Check(health_pb2.HealthCheckRequest(service=name))
                assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
            assert _listed(channel) == {
                "crm.v1.CaseService",
                "crm.v1.TimelineService",
                "grpc.health.v1.Health",
                "grpc.reflection.v1alpha.ServerReflection",
            }
            # A store that can no longer write turns what this server serves NOT_SERVING.
            server.server.stop_serving_health("store lost")

            def case_not_serving() -> bool:
                check = health_pb2.HealthCheckRequest(service="crm.v1.CaseService")
                return bool(health.Check(check).status == NOT_SERVING)

            poll(case_not_serving)
            assert health.Check(health_pb2.HealthCheckRequest(service="")).status == NOT_SERVING
        finally:
            channel.close()


def test_unknown_services_are_refused_when_the_server_is_built(system: System) -> None:
    with pytest.raises(ValueError, match="give one or more of customer, case, feedback"):
        ServerThread(system, services=("orders",))
    with pytest.raises(ValueError, match="give one or more of"):
        ServerThread(system, services=())


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        (["--services", "customer,orders"], "no service 'orders'"),
        (["--services", ","], "',' names no service"),
    ],
)
def test_crm_server_refuses_bad_services_at_start_in_one_line(
    tmp_path: Path, given: list[str], problem: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    done = subprocess.run(
        [sys.executable, "-m", "services.entrypoints.server", *given],
        env={**clean, "CRM_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"crm-server: --services / CRM_SERVICES: {problem}; give")
    assert not (tmp_path / "events.db").exists(), "nothing may be opened before the check"


def test_crm_server_reads_the_services_from_the_environment_too(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    done = subprocess.run(
        [sys.executable, "-m", "services.entrypoints.server"],
        env={**clean, "CRM_DATA_DIR": str(tmp_path), "CRM_SERVICES": "timeline,billing"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("crm-server: --services / CRM_SERVICES: no service 'billing'")
