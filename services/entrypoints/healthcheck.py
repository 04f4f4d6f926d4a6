"""`crm-healthcheck`: exit 0 when the local crm-server serves each of its services, else 1.

For container health checks that have no gRPC probe of their own (docker compose): it reads the
same `listen` and `services` settings as the server beside it, so one environment configures
both, and asks gRPC health about every service named. A wildcard listen host (0.0.0.0, [::]) is
asked on the loopback address. With TLS on (the default) it trusts the server's own certificate:
the configured one (its chain should hold the issuing CA), else the one generated in the data dir.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crm.security_settings import TLS, TLS_CERT
from crm.settings import DATA_DIR, LISTEN, SERVICES, Settings
from crm.startup import SettingsParser, exit_on_error
from crm.tls import certificate_name
from services.bootstrap_security import dev_certificate
from services.grpc_server import FULL_NAMES

PROG = "crm-healthcheck"
USES = (LISTEN, SERVICES, DATA_DIR, TLS, TLS_CERT)
WILDCARDS = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "": "127.0.0.1"}


def parser() -> SettingsParser:
    """Its command line: the settings it shares with the server, and how long to wait."""
    parsed = SettingsParser(PROG, __doc__, USES)
    tool = parsed.add_argument_group("health check")
    tool.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for each answer")
    return parsed


def main(argv: list[str] | None = None) -> None:
    with exit_on_error(PROG):
        settings, args = parser().settings(argv)
    problem = check(settings, args.timeout)
    if problem:
        sys.stderr.write(f"{PROG}: {problem}\n")
        raise SystemExit(1)


def target(listen: str) -> str:
    """Where to reach a server that listens on `listen`: loopback for a wildcard host."""
    host, _, port = listen.rpartition(":")
    return f"{WILDCARDS.get(host, host)}:{port}"


def check(settings: Settings, timeout: float) -> str | None:
    """None when the server and each of its services answer SERVING, else what is wrong."""
    address = target(settings.listen)
    try:
        channel = _channel(settings, address)
    except OSError as error:
        return f"{address}: no certificate to trust: {error.strerror}: {error.filename}"
    with channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", *(FULL_NAMES[service] for service in settings.services)):
            shown = name or "the server"
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=timeout)
            except grpc.RpcError as exc:
                return f"{address}: {shown}: {exc.code().name}"
            if reply.status != health_pb2.HealthCheckResponse.SERVING:
                status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
                return f"{address}: {shown}: {status}"
    return None


def _channel(settings: Settings, address: str) -> grpc.Channel:
    if not settings.tls:
        return grpc.insecure_channel(address)
    chain = (settings.tls_cert or dev_certificate(settings)[0]).read_bytes()
    name = certificate_name(chain)
    credentials = grpc.ssl_channel_credentials(chain)
    return grpc.secure_channel(address, credentials, [("grpc.ssl_target_name_override", name)])


if __name__ == "__main__":
    main()
