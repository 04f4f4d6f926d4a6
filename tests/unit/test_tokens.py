"""Bearer tokens: what verifies, and every way a token that proves nothing is refused."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from crm.errors import Unauthenticated
from crm.identity import Principal, Role
from crm.tokens import (
    KeySet,
    TokenRules,
    ensure_dev_key,
    issue,
    key_set_from_jwks,
    load_key_set,
    new_secret_jwks,
    verify,
)
from crm.vocabulary import Actor, ActorKind

RULES = TokenRules("crm")
NOW = datetime.now(UTC)


def _claims(**overrides: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "sub": "agent-7",
        "role": "agent",
        "aud": "crm",
        "exp": NOW + timedelta(hours=1),
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def _refused(keys: KeySet, token: str) -> str:
    """The refusal's message, which names neither the token nor what it claims."""
    with pytest.raises(Unauthenticated) as refused:
        verify(keys, RULES, token)
    message = str(refused.value)
    assert (len(token) < 4 or token not in message) and "agent-7" not in message
    return message


def test_a_development_token_proves_its_subject_role_teams_and_acting_for() -> None:
    keys = key_set_from_jwks(new_secret_jwks())
    token = issue(
        keys, RULES, subject="bot-3", role=Role.BOT, teams=("billing",), acting_for="agent:a-1"
    )
    assert verify(keys, RULES, token) == Principal(
        "bot-3", Role.BOT, ("billing",), Actor(ActorKind.AGENT, "a-1")
    )


def test_expired_tokens_are_refused_saying_so() -> None:
    keys = key_set_from_jwks(new_secret_jwks())
    token = issue(keys, RULES, subject="agent-7", role=Role.AGENT, now=NOW - timedelta(days=1))
    assert "expired" in _refused(keys, token)


def test_a_token_signed_with_another_key_is_refused() -> None:
    keys = key_set_from_jwks(new_secret_jwks())
    other = key_set_from_jwks(new_secret_jwks())
    forged = issue(other, RULES, subject="agent-7", role=Role.AGENT)
    assert _refused(keys, forged) == "the bearer token is not valid"


def test_unsigned_and_unknown_algorithm_tokens_are_refused() -> None:
    keys = key_set_from_jwks(new_secret_jwks())
    unsigned = jwt.encode(_claims(), "", algorithm="none")
    _refused(keys, unsigned)
    secret = keys.keys[0].key
    hs512 = jwt.encode(_claims(), secret * 2, algorithm="HS512")
    _refused(keys, hs512)


@pytest.mark.parametrize(
    "claims",
    [
        _claims(exp=None),
        _claims(sub=None),
        _claims(role=None),
        _claims(aud=None),
        _claims(aud="another-system"),
        _claims(role="root"),
        _claims(sub="has spaces"),
        _claims(teams="billing"),
        _claims(acting_for="nobody"),
    ],
    ids=[
        "no exp",
        "no sub",
        "no role",
        "no aud",
        "other aud",
        "unknown role",
        "bad sub",
        "teams not a list",
        "bad acting_for",
    ],
)
def test_tokens_missing_a_required_claim_or_holding_a_bad_one_are_refused(
    claims: dict[str, object],
) -> None:
    document = new_secret_jwks()
    keys = key_set_from_jwks(document)
    token = jwt.encode(claims, keys.keys[0].key, algorithm="HS256")
    assert _refused(keys, token) == "the bearer token is not valid"


def test_garbage_is_refused() -> None:
    keys = key_set_from_jwks(new_secret_jwks())
    for garbage in ("", "x", "a.b.c", "e30.e30.", "Bearer"):
        _refused(keys, garbage)


def test_the_issuer_is_checked_when_configured() -> None:
    keys = key_set_from_jwks(new_secret_jwks())
    strict = TokenRules("crm", "https://id.example")
    token = issue(keys, RULES, subject="agent-7", role=Role.AGENT)
    with pytest.raises(Unauthenticated):
        verify(keys, strict, token)
    assert verify(keys, strict, issue(keys, strict, subject="a", role=Role.AGENT)).subject == "a"


def test_rs256_tokens_verify_against_a_pem_public_key(tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "idp.pem").write_bytes(pem)
    keys = load_key_set(tmp_path / "idp.pem")
    token = jwt.encode(_claims(), private, algorithm="RS256")
    assert verify(keys, RULES, token).role is Role.AGENT
    assert keys.signing_key is None


def test_a_public_key_cannot_be_used_as_an_hmac_secret(tmp_path: Path) -> None:
    """The algorithm-confusion attack: HS256 keyed with the server's public RSA key."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "idp.pem").write_bytes(pem)
    keys = load_key_set(tmp_path / "idp.pem")
    header = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = jwt.utils.base64url_encode(json.dumps({"sub": "x", "role": "admin"}).encode())
    signature = hmac.new(pem, header + b"." + body, hashlib.sha256).digest()
    forged = b".".join((header, body, jwt.utils.base64url_encode(signature))).decode()
    _refused(keys, forged)


def test_es256_tokens_verify_against_a_jwks_and_the_key_id_picks_the_key(tmp_path: Path) -> None:
    first, second = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    jwks = {
        "keys": [
            {**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(k.public_key())), "kid": kid}
            for kid, k in (("one", first), ("two", second))
        ]
    }
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    keys = load_key_set(tmp_path / "jwks.json")
    token = jwt.encode(_claims(), second, algorithm="ES256", headers={"kid": "two"})
    assert verify(keys, RULES, token).subject == "agent-7"
    wrong_kid = jwt.encode(_claims(), second, algorithm="ES256", headers={"kid": "one"})
    _refused(keys, wrong_kid)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not a key", "neither a JWKS"),
        ('{"x": 1}', '"keys"'),
        ('{"keys": [{"kty": "oct", "k": "c2hvcnQ", "alg": "HS256"}]}', "shorter than"),
        ('{"keys": []}', "holds no key"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "no public key"),
    ],
)
def test_key_files_that_are_not_usable_are_refused_saying_why(
    tmp_path: Path, content: str, problem: str
) -> None:
    (tmp_path / "keys").write_text(content)
    with pytest.raises(ValueError, match=problem):
        load_key_set(tmp_path / "keys")


def test_the_development_key_is_made_once_and_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "dev.json"
    assert ensure_dev_key(path)
    content = path.read_text()
    assert not ensure_dev_key(path)
    assert path.read_text() == content
    assert path.stat().st_mode & 0o077 == 0
    assert load_key_set(path).signing_key is not None
