"""The plaintext health port beside a TLS-only server: what Kubernetes' gRPC probes can reach.

It answers health alone, from the same servicer as the main port, so it says what the main port
says, and it serves nothing else.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.server_thread import ServerThread
from crm.settings import Settings
from crm.v1 import customer_service_pb2, customer_service_pb2_grpc
from services.bootstrap import build_system
from tests.grpc_client import poll


def test_the_health_port_answers_health_alone_as_the_server_does(tmp_path: Path) -> None:
    system = build_system(
        Settings.defaults(data_dir=tmp_path, in_process_projector=False, in_process_deadlines=False)
    )
    server = ServerThread(system, services=("customer",), health_listen="127.0.0.1:0")
    try:
        assert server.server.health_port
        channel = grpc.insecure_channel(f"127.0.0.1:{server.server.health_port}")
        health = health_pb2_grpc.HealthStub(channel)
        serving = health_pb2.HealthCheckResponse.SERVING
        for name in ("", "crm.v1.CustomerService"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
            assert reply.status == serving
        with pytest.raises(grpc.RpcError) as unknown:
            health.Check(health_pb2.HealthCheckRequest(service="crm.v1.CaseService"), timeout=10)
        assert unknown.value.code() is grpc.StatusCode.NOT_FOUND  # not served by this server
        customers = customer_service_pb2_grpc.CustomerServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            customers.GetCustomer(customer_service_pb2.GetCustomerRequest(customer_id="c-1"))
        assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED

        server.server.stop_serving_health("the store's file is gone")
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING

        def reported() -> bool:
            reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
            return bool(reply.status == not_serving)

        poll(reported, timeout=10)  # set from another thread, on the server's loop
        channel.close()
    finally:
        server.stop()
        system.close()


def test_a_health_address_in_use_stops_the_server_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [
                *(sys.executable, "-m", "services.entrypoints.server"),
                *("--listen", "127.0.0.1:0", "--data-dir", str(tmp_path)),
                *("--health-listen", f"127.0.0.1:{port}"),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert "--health-listen / CRM_HEALTH_LISTEN" in lines[-1], done.stderr
