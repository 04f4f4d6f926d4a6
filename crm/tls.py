"""Certificates for TLS: the self-signed server certificate `make run` creates, and small CAs.

A development server needs a certificate on its first start without anyone running openssl;
tests need a certificate authority that signs client certificates for mutual TLS. Both are made
here with `cryptography`, as PEM bytes that grpc's credentials take as they are.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
"""Where a development server is reached: its certificate names all of them."""
VALIDITY = timedelta(days=825)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, both PEM."""

    certificate: bytes
    private_key: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _alternative_names(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _sign(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
    names: tuple[str, ...] = (),
    client: bool = False,
    now: datetime | None = None,
) -> bytes:
    start = (now or datetime.now(UTC)) - timedelta(minutes=5)  # tolerate clocks a little behind
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(_alternative_names(names), critical=False)
    if not ca:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    certificate = builder.sign(issuer_key, hashes.SHA256())
    return certificate.public_bytes(serialization.Encoding.PEM)


def self_signed(names: tuple[str, ...] = LOCAL_NAMES) -> KeyPair:
    """A server certificate that signs itself, valid for `names` (host names or IP addresses)."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = _sign(names[0], key, None, ca=True, names=names)
    return KeyPair(certificate, _pem_key(key))


class CertificateAuthority:
    """A CA that signs server and client certificates (tests, and private deployments)."""

    def __init__(self, name: str = "crm test CA") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = _name(name)
        self.certificate = _sign(name, self._key, None, ca=True)

    def server(self, names: tuple[str, ...] = LOCAL_NAMES) -> KeyPair:
        """A server certificate valid for `names`, signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = _sign(names[0], key, (self._name, self._key), ca=False, names=names)
        return KeyPair(certificate, _pem_key(key))

    def client(self, common_name: str) -> KeyPair:
        """A client certificate whose common name becomes the caller's subject."""
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = _sign(common_name, key, (self._name, self._key), ca=False, client=True)
        return KeyPair(certificate, _pem_key(key))


def ensure_self_signed(
    certificate: Path, private_key: Path, names: tuple[str, ...] = LOCAL_NAMES
) -> bool:
    """Write a self-signed certificate for `names` and its key unless both files exist; True if
    written.

    The key file is created readable by its owner only.
    """
    if certificate.exists() and private_key.exists():
        return False
    pair = self_signed(names)
    certificate.parent.mkdir(parents=True, exist_ok=True)
    write_private(private_key, pair.private_key)
    certificate.write_bytes(pair.certificate)
    return True


def write_private(path: Path, content: bytes) -> None:
    """Write a secret to a new file only its owner may read (replacing any file there)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(content)
    os.replace(temporary, path)


def check_pair(certificate_chain: bytes, private_key: bytes) -> None:
    """ValueError unless the chain is PEM certificates whose first one belongs to the key."""
    try:
        certificates = x509.load_pem_x509_certificates(certificate_chain)
    except ValueError:
        raise ValueError("is not a PEM certificate chain") from None
    try:
        key = serialization.load_pem_private_key(private_key, password=None)
    except (ValueError, TypeError):
        raise ValueError("the key is not an unencrypted PEM private key") from None
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    mine = key.public_key().public_bytes(serialization.Encoding.PEM, public)
    if certificates[0].public_key().public_bytes(serialization.Encoding.PEM, public) != mine:
        raise ValueError("the certificate does not belong to the key")


def check_certificates(pem: bytes) -> None:
    """ValueError unless `pem` holds PEM certificates (a CA bundle)."""
    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ValueError("is not a PEM certificate bundle") from None


def certificate_name(certificate_chain: bytes) -> str:
    """A name the first certificate of a chain is valid for: its first DNS name, else its CN.

    A client on the server's own host (a health check) connects to the loopback address and
    asks for this name instead, so the certificate need not name the loopback address.
    """
    leaf = x509.load_pem_x509_certificates(certificate_chain)[0]
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = names.get_values_for_type(x509.DNSName)
        if dns:
            return dns[0]
    except x509.ExtensionNotFound:
        pass
    common = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(common[0].value) if common else "localhost"
