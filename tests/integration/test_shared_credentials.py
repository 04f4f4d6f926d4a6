"""`crm-credentials`: one development key and certificate, written once and kept, for servers to
share; crm-token signs with that key and the servers' settings accept what it signs."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509

from crm.settings import Settings
from crm.tokens import load_key_set, verify
from services.bootstrap_security import build_security
from services.entrypoints import credentials, token


def test_it_writes_the_key_and_a_certificate_for_the_names_then_keeps_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    credentials.main(["--data-dir", str(tmp_path), "--name", "case", "--name", "10.0.0.5"])
    key, cert, private = (
        tmp_path / "dev-token-key.jwks.json",
        tmp_path / "tls" / "server.crt",
        tmp_path / "tls" / "server.key",
    )
    assert capsys.readouterr().out.splitlines() == [
        f"wrote {key} (--token-keys)",
        f"wrote {cert} (--tls-cert; clients trust it)",
        f"wrote {private} (--tls-key)",
    ]
    for secret in (key, private):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    names = (
        x509.load_pem_x509_certificate(cert.read_bytes())
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    assert set(names.get_values_for_type(x509.DNSName)) == {"localhost", "case"}
    addresses = {str(a) for a in names.get_values_for_type(x509.IPAddress)}
    assert addresses == {"127.0.0.1", "::1", "10.0.0.5"}

    before = [p.read_bytes() for p in (key, cert, private)]
    credentials.main(["--data-dir", str(tmp_path), "--name", "other"])
    assert capsys.readouterr().out.startswith(f"kept {key}")
    assert [p.read_bytes() for p in (key, cert, private)] == before


def test_servers_configured_with_the_files_accept_what_crm_token_signs_with_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shared = tmp_path / "shared"
    credentials.main(["--data-dir", str(shared)])
    capsys.readouterr()
    keys = shared / "dev-token-key.jwks.json"
    token.main(["--token-keys", str(keys), "--role", "agent", "--subject", "a-1", "--team", "t1"])
    signed = capsys.readouterr().out.strip()
    for server in ("one", "two"):
        settings = Settings.defaults(
            data_dir=tmp_path / server,  # each its own data dir: nothing generated there
            token_keys=keys,
            tls_cert=shared / "tls" / "server.crt",
            tls_key=shared / "tls" / "server.key",
        )
        security = build_security(settings)
        assert security.authenticator is not None and security.tls is not None
        principal = verify(security.authenticator.keys, security.authenticator.rules, signed)
        assert (principal.subject, principal.teams) == ("a-1", ("t1",))
        assert not (tmp_path / server / "dev-token-key.jwks.json").exists()
    assert load_key_set(keys).signing_key is not None
