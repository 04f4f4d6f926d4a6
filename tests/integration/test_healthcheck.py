"""`crm-healthcheck` against a real server: healthy only while each configured service serves."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.server_thread import ServerThread
from crm.settings import Settings
from services.bootstrap import build_system
from services.bootstrap_security import build_security
from services.entrypoints.healthcheck import target
from tests.grpc_client import poll


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerThread]:
    system = build_system(
        Settings.defaults(data_dir=tmp_path, in_process_projector=False, in_process_deadlines=False)
    )
    running = ServerThread(system, services=("customer", "feedback"))
    yield running
    running.stop()
    system.close()


def healthcheck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The health check against a plaintext test server, unless `env` says otherwise."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    clean["CRM_TLS"] = "off"
    return subprocess.run(
        [sys.executable, "-m", "services.entrypoints.healthcheck", "--timeout", "5", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_healthy_when_every_configured_service_serves(server: ServerThread) -> None:
    done = healthcheck(env={"CRM_LISTEN": f"0.0.0.0:{server.port}", "CRM_SERVICES": "customer"})
    assert (done.returncode, done.stderr) == (0, "")
    both = healthcheck("--listen", f"127.0.0.1:{server.port}", "--services", "feedback,customer")
    assert (both.returncode, both.stderr) == (0, "")


def test_unhealthy_for_a_service_the_server_does_not_serve(server: ServerThread) -> None:
    done = healthcheck("--listen", f"0.0.0.0:{server.port}", "--services", "customer,case")
    assert done.returncode == 1
    assert done.stderr == (
        f"crm-healthcheck: 127.0.0.1:{server.port}: crm.v1.CaseService: NOT_FOUND\n"
    )


def test_unhealthy_once_the_server_stops_serving(server: ServerThread) -> None:
    server.server.stop_serving_health("store lost")

    def refused() -> subprocess.CompletedProcess[str] | None:
        done = healthcheck("--listen", f"127.0.0.1:{server.port}", "--services", "customer")
        return done if done.returncode == 1 else None

    assert "the server: NOT_SERVING" in poll(refused, timeout=20).stderr


def test_over_tls_it_trusts_the_certificate_the_server_made(tmp_path: Path) -> None:
    settings = Settings.defaults(data_dir=tmp_path)
    missing = healthcheck("--data-dir", str(tmp_path), env={"CRM_TLS": "on"})
    assert missing.returncode == 1 and "no certificate to trust" in missing.stderr
    system = build_system(settings)
    with ServerThread(system, security=build_security(settings)) as running:
        done = healthcheck(
            *("--data-dir", str(tmp_path), "--listen", f"0.0.0.0:{running.port}"),
            env={"CRM_TLS": "on"},
        )
        assert (done.returncode, done.stderr) == (0, "")
        plain = healthcheck("--listen", f"127.0.0.1:{running.port}", "--timeout", "1")
        assert plain.returncode == 1
    system.close()


def test_unhealthy_when_nothing_listens() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago, now closed again
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = healthcheck("--listen", f"127.0.0.1:{port}", "--timeout", "1")
    assert done.returncode == 1
    assert done.stderr.startswith(f"crm-healthcheck: 127.0.0.1:{port}: the server: ")


def test_a_wrong_setting_stops_it_like_any_process() -> None:
    done = healthcheck("--services", "orders")
    assert done.returncode == 2
    assert done.stderr.startswith("crm-healthcheck: --services / CRM_SERVICES: no service")


@pytest.mark.parametrize(
    ("listen", "reached"),
    [
        ("0.0.0.0:50051", "127.0.0.1:50051"),
        ("[::]:50051", "[::1]:50051"),
        ("127.0.0.2:7000", "127.0.0.2:7000"),
        ("crm-case:50051", "crm-case:50051"),
    ],
)
def test_a_wildcard_host_is_asked_on_loopback(listen: str, reached: str) -> None:
    assert target(listen) == reached
