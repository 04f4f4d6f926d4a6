"""Compose: every server checks tokens with one key and shows one certificate.

The `credentials` service writes them once into a volume every server mounts read-only; the
files stand in here as what its crm-credentials command really writes (tests/deploy/manifests.py),
so the checks below run the code each process would run at start on those very files.
"""

from __future__ import annotations

from dataclasses import replace

from cryptography import x509

from crm.identity import Role
from crm.tokens import issue, verify
from services.bootstrap_security import build_security, build_token_signer
from tests.deploy.manifests import (
    Container,
    compose,
    project_containers,
    settings_of,
    volume_writers,
)

VOLUME = "credentials"
FILES = ("CRM_TOKEN_KEYS", "CRM_TLS_CERT", "CRM_TLS_KEY")


def compose_servers() -> list[Container]:
    return [
        c
        for c in project_containers()
        if c.where.startswith("compose:") and c.script == "crm-server"
    ]


def test_every_server_names_the_same_key_and_certificate_in_the_shared_volume() -> None:
    servers = compose_servers()
    assert len(servers) == 5
    named = {tuple(server.env.get(name, "") for name in FILES) for server in servers}
    assert len(named) == 1, f"the servers name different files: {named}"
    ((keys, cert, key),) = named
    for server in servers:
        (mount,) = [m for m in server.mounts if m.volume == VOLUME]
        assert mount.read_only, server.where
        for path in (keys, cert, key):
            assert path.startswith(mount.path.rstrip("/") + "/"), (server.where, path)
        settings = settings_of(server)
        assert settings.auth == "jwt" and settings.tls, server.where
        assert (settings.token_keys, settings.tls_cert, settings.tls_key) == (
            settings_of(servers[0]).token_keys,
            settings_of(servers[0]).tls_cert,
            settings_of(servers[0]).tls_key,
        )


def test_one_service_writes_the_volume_once_before_any_server_starts() -> None:
    (writer,) = volume_writers(VOLUME)
    name = writer.where.removeprefix("compose:")
    assert writer.script == "crm-credentials"
    assert compose()["services"][name]["restart"] == "no"  # one-shot: it exits when done
    for server in compose_servers():
        depends = server.raw["depends_on"][name]
        assert depends == {"condition": "service_completed_successfully"}, server.where


def test_a_token_made_in_any_server_container_is_accepted_by_every_server() -> None:
    servers = compose_servers()
    checks = [build_security(settings_of(server)) for server in servers]
    for server in servers:
        # crm-token run inside the server's container: the same environment and mounts (its
        # settings; the token's own flags are not settings).
        maker = replace(server, command=("crm-token",))
        keys, rules = build_token_signer(settings_of(maker))
        token = issue(keys, rules, subject="agent-7", role=Role.AGENT, teams=("billing",))
        for security in checks:
            assert security.authenticator is not None
            authenticator = security.authenticator
            principal = verify(authenticator.keys, authenticator.rules, token)
            assert (principal.subject, principal.teams) == ("agent-7", ("billing",))
    assert len({security.tls for security in checks}) == 1  # one certificate and key


def test_the_certificate_names_every_server_and_the_published_loopback() -> None:
    (server, *_) = compose_servers()
    pem = settings_of(server).tls_cert
    assert pem is not None
    certificate = x509.load_pem_x509_certificate(pem.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = set(names.get_values_for_type(x509.DNSName))
    addresses = {str(a) for a in names.get_values_for_type(x509.IPAddress)}
    for container in compose_servers():
        assert container.where.removeprefix("compose:") in dns, container.where
        published = {str(p).split(":")[0] for p in container.raw["ports"]}
        assert published <= addresses, container.where
    assert "localhost" in dns
