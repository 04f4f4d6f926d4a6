"""Bearer tokens (JWT, via PyJWT): the key set they are checked against, issuing and verifying.

Production verifies RS256 or ES256 tokens from an identity provider against its public keys (a
PEM file or a JWKS file); development signs and verifies HS256 tokens with a secret that the
server generates in its data dir and `crm-token` reads. Each key allows exactly one algorithm,
so a token can never choose how it is checked (no `none`, no HMAC keyed with a public key).
Every failure is `Unauthenticated` with a message that says what to fix and nothing else.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from crm.errors import Unauthenticated
from crm.identity import ROLE_NAMES, Principal, Role, parse_actor
from crm.tls import write_private

log = logging.getLogger(__name__)

ALGORITHMS = ("HS256", "RS256", "ES256")
"""The only algorithms a key may allow."""
REQUIRED_CLAIMS = ("exp", "sub", "role")
LEEWAY = timedelta(seconds=30)
"""Clock skew forgiven between the token's issuer and this server."""
MIN_SECRET_BYTES = 32
DEV_KEY_FILE = "dev-token-key.jwks.json"
"""The development HS256 secret in the data dir, as a JWKS holding one symmetric key."""
_SUBJECT = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
_SECRET_PREFIX = "-----"  # a PEM file starts so


@dataclass(frozen=True)
class TokenKey:
    """One key a token may be checked against, with the one algorithm it allows."""

    algorithm: str
    key: Any  # bytes (HS256) or a cryptography public key
    key_id: str | None = None

    @property
    def can_sign(self) -> bool:
        return self.algorithm == "HS256"


@dataclass(frozen=True)
class TokenRules:
    """What every token must say besides its signature: the audience and, if set, the issuer."""

    audience: str
    issuer: str = ""


class KeySet:
    """The keys tokens are verified with; `crm-token` signs with its symmetric key, if any."""

    def __init__(self, keys: Sequence[TokenKey]) -> None:
        if not keys:
            raise ValueError("holds no key")
        self.keys = tuple(keys)

    @property
    def signing_key(self) -> TokenKey | None:
        return next((key for key in self.keys if key.can_sign), None)

    def candidates(self, algorithm: str, key_id: str | None) -> list[TokenKey]:
        """The keys a token signed with `algorithm` (and naming `key_id`) may be checked with."""
        keys = [key for key in self.keys if key.algorithm == algorithm]
        if key_id is not None:
            keys = [key for key in keys if key.key_id in (key_id, None)]
        return keys


def load_key_set(path: Path) -> KeySet:
    """The keys in a file: a JWKS (JSON with "keys"), or one PEM public key (RSA or P-256).

    Raises ValueError saying what is wrong with the file.
    """
    try:
        text = path.read_text()
    except OSError as error:
        raise ValueError(f"cannot read {str(path)!r}: {error.strerror}") from None
    if text.lstrip().startswith(_SECRET_PREFIX):
        return KeySet([_pem_key(text.encode())])
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        raise ValueError(f"{str(path)!r} is neither a JWKS (JSON) nor a PEM public key") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError(f'{str(path)!r} is JSON without a "keys" list; give a JWKS')
    return key_set_from_jwks(document)


def key_set_from_jwks(document: Mapping[str, Any]) -> KeySet:
    """The keys of a JWKS document (already parsed); ValueError names what is wrong."""
    return KeySet([_jwk(entry) for entry in document["keys"]])


def _pem_key(pem: bytes) -> TokenKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise ValueError("the PEM file holds no public key; give the public key only") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise ValueError(f"the RSA key has {key.key_size} bits; give one of 2048 or more")
        return TokenKey("RS256", key)
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return TokenKey("ES256", key)
    raise ValueError("the PEM key is neither RSA nor EC P-256 (RS256, ES256)")


def _jwk(entry: Any) -> TokenKey:
    if not isinstance(entry, dict):
        raise ValueError("a JWKS key is not a JSON object")
    try:
        parsed = jwt.PyJWK.from_dict(entry)
    except jwt.PyJWTError as error:
        raise ValueError(f"a JWKS key is not usable: {error}") from None
    if parsed.algorithm_name not in ALGORITHMS:
        raise ValueError(
            f"a JWKS key is for {parsed.algorithm_name}; give keys for {', '.join(ALGORITHMS)}"
        )
    key = parsed.key
    if parsed.algorithm_name == "HS256" and len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"an HS256 key is shorter than {MIN_SECRET_BYTES} bytes")
    return TokenKey(parsed.algorithm_name, key, parsed.key_id)


def new_secret_jwks() -> dict[str, Any]:
    """A JWKS holding one fresh random HS256 secret (development)."""
    secret = secrets.token_bytes(MIN_SECRET_BYTES)
    encoded = base64.urlsafe_b64encode(secret).rstrip(b"=").decode()
    key_id = f"dev-{secrets.token_hex(4)}"
    return {"keys": [{"kty": "oct", "alg": "HS256", "kid": key_id, "k": encoded}]}


def ensure_dev_key(path: Path) -> bool:
    """Create the development secret at `path` unless it exists; True if created."""
    if path.exists():
        return False
    write_private(path, json.dumps(new_secret_jwks(), indent=2).encode())
    return True


def issue(
    keys: KeySet,
    rules: TokenRules,
    *,
    subject: str,
    role: Role,
    teams: Sequence[str] = (),
    acting_for: str = "",
    lifetime: timedelta = timedelta(hours=8),
    now: datetime | None = None,
) -> str:
    """A token signed with the key set's symmetric key (development and tests)."""
    key = keys.signing_key
    if key is None:
        raise ValueError("the key set has no HS256 secret to sign with (public keys only verify)")
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": subject,
        "role": role.value,
        "aud": rules.audience,
        "iat": issued,
        "exp": issued + lifetime,
    }
    if rules.issuer:
        claims["iss"] = rules.issuer
    if teams:
        claims["teams"] = list(teams)
    if acting_for:
        claims["acting_for"] = acting_for
    headers = {"kid": key.key_id} if key.key_id else None
    return jwt.encode(claims, key.key, algorithm=key.algorithm, headers=headers)


def verify(keys: KeySet, rules: TokenRules, token: str) -> Principal:
    """The principal a token proves; Unauthenticated when it proves nothing."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise _refused("malformed") from None
    algorithm = header.get("alg")
    key_id = header.get("kid")
    if algorithm not in ALGORITHMS or not isinstance(key_id, str | None):
        raise _refused(f"algorithm {str(algorithm)[:16]!r} not accepted")
    candidates = keys.candidates(algorithm, key_id)
    if not candidates:
        raise _refused("no key for its algorithm and key id")
    claims: Mapping[str, Any] | None = None
    for key in candidates:
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm],
                audience=rules.audience,
                issuer=rules.issuer or None,
                leeway=LEEWAY,
                options={"require": [*REQUIRED_CLAIMS, "aud"]},
            )
            break
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the bearer token has expired; get a new one") from None
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as error:
            raise _refused(type(error).__name__) from None
    if claims is None:
        raise _refused("signature does not match")
    return _principal(claims)


def _principal(claims: Mapping[str, Any]) -> Principal:
    subject, role, teams = claims.get("sub"), claims.get("role"), claims.get("teams", [])
    if not isinstance(subject, str) or not _SUBJECT.fullmatch(subject):
        raise _refused("sub is not an id")
    if role not in ROLE_NAMES:
        raise _refused("role is unknown")
    if not isinstance(teams, list) or not all(isinstance(t, str) for t in teams):
        raise _refused("teams is not a list of names")
    acting_for = claims.get("acting_for")
    actor = None
    if acting_for is not None:
        if not isinstance(acting_for, str):
            raise _refused("acting_for is not kind:id")
        try:
            actor = parse_actor(acting_for)
        except ValueError:
            raise _refused("acting_for is not kind:id") from None
    return Principal(subject, Role(role), tuple(teams), actor)


def _refused(reason: str) -> Unauthenticated:
    """The one answer to a token that proves nothing; the reason goes to the log only."""
    log.info("bearer token refused: %s", reason)
    return Unauthenticated("the bearer token is not valid")
