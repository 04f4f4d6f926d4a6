"""TLS and mutual TLS through gRPC: whom a client trusts, and what a client certificate proves."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.credentials import ClientAccess, suite_security
from bench.server_thread import ServerThread
from crm.identity import Role
from crm.settings import Settings
from crm.tls import CertificateAuthority, KeyPair
from crm.v1 import common_pb2, customer_events_pb2, customer_service_pb2, customer_service_pb2_grpc
from crm.vocabulary import Actor, ActorKind
from services.bootstrap import System, build_system
from services.bootstrap_security import announce_security, build_security
from services.server_security import TlsFiles
from tests.grpc_client import stamp

C = grpc.StatusCode
CA = CertificateAuthority("crm test CA")
STRANGER = CertificateAuthority("someone else")


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    built = build_system(Settings.defaults(data_dir=tmp_path_factory.mktemp("tls")))
    yield built
    built.close()


def _channel(target: str, trust: bytes, client: KeyPair | None = None) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        trust,
        None if client is None else client.private_key,
        None if client is None else client.certificate,
    )
    return grpc.secure_channel(target, credentials)


def _health(channel: grpc.Channel) -> grpc.StatusCode:
    try:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    finally:
        channel.close()
    return C.OK


def _register(channel: grpc.Channel, request_id: str, token: str | None = None) -> str:
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)
    reply = customer_service_pb2_grpc.CustomerServiceStub(channel).RegisterCustomer(
        customer_service_pb2.RegisterCustomerRequest(
            context=common_pb2.CommandContext(
                request_id=request_id,
                occurred_at=stamp(datetime.now(UTC) - timedelta(minutes=1)),
            ),
            name="Aiko Tanaka",
            language="ja",
            segment=customer_events_pb2.SEGMENT_B2C,
        ),
        metadata=metadata,
        timeout=10,
    )
    return reply.aggregate_id


def _actor_of(system: System, request_id: str) -> tuple[Actor, Actor | None]:
    (event,) = [e for e in system.store.read_all(0, 100_000) if e.metadata.request_id == request_id]
    return event.metadata.actor, event.metadata.via


def test_only_a_client_that_trusts_the_servers_certificate_gets_through(system: System) -> None:
    pair = CA.server()
    security = suite_security(tls=TlsFiles(pair.certificate, pair.private_key))
    with ServerThread(system, security=security) as server:
        assert _health(_channel(server.target, CA.certificate)) == C.OK
        assert _health(_channel(server.target, STRANGER.certificate)) == C.UNAVAILABLE
        assert _health(grpc.insecure_channel(server.target)) == C.UNAVAILABLE
        trusted = server.access.channel()
        assert server.access.root_certificate == pair.certificate
        customer_service_pb2_grpc.CustomerServiceStub(trusted).GetCustomer(
            customer_service_pb2.GetCustomerRequest(customer_id=_register(trusted, "tls-1"))
        )
        trusted.close()


def test_a_client_certificate_signed_by_the_configured_ca_is_a_service(system: System) -> None:
    pair = CA.server()
    base = suite_security(tls=TlsFiles(pair.certificate, pair.private_key, CA.certificate))
    assert base.authenticator is not None
    security = replace(base, authenticator=replace(base.authenticator, client_certificates=True))
    with ServerThread(system, security=security) as server:
        shop = _channel(server.target, CA.certificate, CA.client("shop"))
        _register(shop, "mtls-shop")
        assert _actor_of(system, "mtls-shop") == (Actor(ActorKind.SYSTEM, "shop"), None)
        # A bearer token over the same connection decides who calls.
        agent_token = server.access.token(Role.SUPERVISOR, "sup-3")
        with pytest.raises(grpc.RpcError) as refused:
            _register(shop, "mtls-supervisor", agent_token)  # supervisors register nobody
        assert refused.value.code() == C.PERMISSION_DENIED
        merge = customer_service_pb2.MergeCustomersRequest(
            context=common_pb2.CommandContext(
                request_id="mtls-merge", occurred_at=stamp(datetime.now(UTC))
            ),
            duplicate_customer_id="a",
            survivor_customer_id="b",
        )
        with pytest.raises(grpc.RpcError) as denied:  # a service merges nobody
            customer_service_pb2_grpc.CustomerServiceStub(shop).MergeCustomers(merge, timeout=10)
        assert denied.value.code() == C.PERMISSION_DENIED
        shop.close()
        # Without a certificate, or with one another CA signed, the handshake fails.
        assert _health(_channel(server.target, CA.certificate)) == C.UNAVAILABLE
        rogue = STRANGER.client("shop")
        assert _health(_channel(server.target, CA.certificate, rogue)) == C.UNAVAILABLE


def test_make_run_defaults_generate_a_key_and_a_certificate_that_clients_use(
    system: System, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = Settings.defaults(data_dir=tmp_path)
    security = build_security(settings)
    announce_security(settings, security)
    assert (tmp_path / "tls" / "server.crt").exists()
    assert "crm-token" in caplog.text
    with ServerThread(system, security=security) as server:
        access = ClientAccess.of_data_dir(server.target, tmp_path)
        channel = access.channel()
        _register(channel, "defaults-1")
        channel.close()
        assert _actor_of(system, "defaults-1")[0] == Actor(ActorKind.SYSTEM, "test-service")
        assert _health(grpc.insecure_channel(server.target)) == C.UNAVAILABLE
    again = build_security(Settings.defaults(data_dir=tmp_path))
    assert again.tls == security.tls  # made once, then reused


def test_running_without_authentication_or_tls_needs_asking_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.defaults(data_dir=tmp_path, auth="off", tls=False)
    security = build_security(settings)
    announce_security(settings, security)
    assert security.authenticator is None and security.tls is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("authentication is off" in w for w in warnings)
    assert any("TLS is off" in w for w in warnings)
    assert not (tmp_path / "tls").exists()
