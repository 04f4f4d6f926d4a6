"""How tests and benchmarks reach an authenticated server: tokens it accepts, the TLS it speaks.

`ClientAccess` holds the server's address, its token key set and the certificate to trust. Its
channels sign every call with a token that fits the call: the actor the request names becomes
the token's subject, with a role the access table lets call the method, so a test that says
"agent-1 adds a note" is authenticated as agent-1, and what the events record is what the test
said. An agent's token carries the teams `ClientAccess.teams` lists for it, as an identity
provider's directory would, and none otherwise: a suite that has agents work assigned cases says
which teams they are in. Production clients bring their own tokens; this is for the suites that
drive the server.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.message import Message

from crm.errors import InvalidInput
from crm.identity import MAY_ACT_FOR, Role
from crm.protocodec import enum_from_proto
from crm.tokens import (
    DEV_KEY_FILE,
    KeySet,
    TokenRules,
    issue,
    key_set_from_jwks,
    load_key_set,
    new_secret_jwks,
)
from crm.v1 import common_pb2
from crm.vocabulary import Actor, ActorKind
from services.access import allowed_roles
from services.authentication import Authenticator
from services.caller_limits import Limits
from services.server_security import ServerSecurity

GATEWAY = "test-gateway"
"""The internal system a test's call goes through when the actor it names cannot call itself."""
_NATURAL = {
    ActorKind.AGENT: Role.AGENT,
    ActorKind.SUPERVISOR: Role.SUPERVISOR,
    ActorKind.BOT: Role.BOT,
    ActorKind.SYSTEM: Role.SERVICE,
}
"""The role an actor of each kind has when it calls for itself (customers never call)."""
_PREFERRED_READER = (Role.AGENT, Role.SUPERVISOR, Role.AUDITOR, Role.SERVICE, Role.ADMIN)


UNLIMITED = Limits(calls=1_000_000, watches=1_000_000)
"""Per-caller limits out of the way: suites open hundreds of watches as one caller on purpose."""


def suite_security(**overrides: Any) -> ServerSecurity:
    """What a test or benchmark server checks: tokens signed with a fresh key, in plaintext,
    with no per-caller limit unless one is given."""
    keys = key_set_from_jwks(new_secret_jwks())
    authenticator = Authenticator(keys, TokenRules("crm"))
    return replace(ServerSecurity(authenticator, tls=None, limits=UNLIMITED), **overrides)


def credential_for(method: str, actor: Actor | None) -> tuple[Role, str, str]:
    """The role, subject and acting-for claim of a token for calling `method` as `actor`.

    The actor's own role when the table allows it; else the gateway service (or a bot) acting
    for it; else the actor's own role anyway, which the server then refuses, as it should.
    """
    allowed = allowed_roles(method)
    if actor is None:
        role = next((r for r in _PREFERRED_READER if r in allowed), Role.ADMIN)
        return role, f"test-{role.value}", ""
    natural = _NATURAL.get(actor.kind)
    if natural is not None and natural in allowed:
        return natural, actor.id, ""
    for role in (Role.SERVICE, Role.BOT):
        if role in allowed and actor.kind in MAY_ACT_FOR[role]:
            return role, GATEWAY, ""
    return natural or Role.SERVICE, actor.id, ""


def request_actor(request: Any) -> Actor | None:
    """The actor a request's command context names, if it names one that makes sense."""
    if not isinstance(request, Message) or "context" not in request.DESCRIPTOR.fields_by_name:
        return None
    if not request.HasField("context") or not request.context.HasField("actor"):  # type: ignore[attr-defined]
        return None
    actor = request.context.actor  # type: ignore[attr-defined]
    try:
        kind = enum_from_proto(ActorKind, actor.kind, common_pb2.ActorKind.DESCRIPTOR, "actor")
    except InvalidInput:
        return None  # the server refuses it on its own
    return Actor(kind, actor.id) if actor.id else None


@dataclass
class ClientAccess:
    """What a client needs to call a server: where, which keys sign its tokens, whom to trust."""

    target: str
    keys: KeySet | None  # None: the server asks for no credential
    rules: TokenRules = field(default_factory=lambda: TokenRules("crm"))
    root_certificate: bytes | None = None  # None: plaintext
    teams: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Each agent's teams, put in its tokens; an agent not listed has none (unassigned cases)."""
    _tokens: dict[tuple[Role, str, str, tuple[str, ...]], str] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    def of_data_dir(cls, target: str, data_dir: Path) -> ClientAccess:
        """A server run with the defaults on `data_dir`: its development key, its certificate."""
        certificate = data_dir / "tls" / "server.crt"
        return cls(
            target,
            load_key_set(data_dir / DEV_KEY_FILE),
            root_certificate=certificate.read_bytes() if certificate.exists() else None,
        )

    def token(
        self, role: Role, subject: str, *, teams: tuple[str, ...] = (), acting_for: str = ""
    ) -> str:
        """A token the server accepts (cached: one per role, subject, teams and acting-for)."""
        assert self.keys is not None, "the server asks for no credential"
        key = (role, subject, acting_for, teams)
        if key not in self._tokens:
            self._tokens[key] = issue(
                self.keys,
                self.rules,
                subject=subject,
                role=role,
                teams=teams,
                acting_for=acting_for,
                lifetime=timedelta(hours=12),
            )
        return self._tokens[key]

    def metadata_for(self, method: str, request: Any) -> list[tuple[str, str]]:
        """The authorization header for calling `method` with `request` as the actor it names."""
        if self.keys is None:
            return []
        role, subject, acting_for = credential_for(method, request_actor(request))
        teams = self.teams.get(subject, ()) if role is Role.AGENT else ()
        token = self.token(role, subject, teams=teams, acting_for=acting_for)
        return [("authorization", f"Bearer {token}")]

    def channel(self, *, fixed_token: str | None = None) -> grpc.Channel:
        """A blocking channel whose calls carry a fitting token (or `fixed_token`)."""
        if self.root_certificate is None:
            plain = grpc.insecure_channel(self.target)
        else:
            credentials = grpc.ssl_channel_credentials(self.root_certificate)
            plain = grpc.secure_channel(self.target, credentials)
        return grpc.intercept_channel(plain, _SyncSigner(self._signer(fixed_token)))

    def aio_channel(self, *, fixed_token: str | None = None) -> grpc.aio.Channel:
        """An asyncio channel whose calls carry a fitting token (or `fixed_token`)."""
        interceptors: list[Any] = [
            _AioUnarySigner(self._signer(fixed_token)),
            _AioStreamSigner(self._signer(fixed_token)),
        ]
        if self.root_certificate is None:
            return grpc.aio.insecure_channel(self.target, interceptors=interceptors)
        credentials = grpc.ssl_channel_credentials(self.root_certificate)
        return grpc.aio.secure_channel(self.target, credentials, interceptors=interceptors)

    def _signer(self, fixed_token: str | None) -> Signer:
        if fixed_token is not None:
            header = [("authorization", f"Bearer {fixed_token}")]
            return lambda method, request: header
        return self.metadata_for


Signer = Callable[[str, Any], list[tuple[str, str]]]


class _Details(
    collections.namedtuple(
        "_Details",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    pass


def _signed(details: Any, sign: Signer, request: Any) -> Any:
    method = details.method.decode() if isinstance(details.method, bytes) else details.method
    metadata = [*(details.metadata or ()), *sign(method, request)]
    return metadata


class _SyncSigner(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
    grpc.StreamStreamClientInterceptor,  # type: ignore[type-arg]
):
    def __init__(self, sign: Signer) -> None:
        self._sign = sign

    def _details(self, details: Any, request: Any) -> _Details:
        return _Details(
            details.method,
            details.timeout,
            _signed(details, self._sign, request),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details, request), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details, request), request)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details, None), requests)


class _AioUnarySigner(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[type-arg]
    def __init__(self, sign: Signer) -> None:
        self._sign = sign

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = grpc.aio.Metadata(*_signed(details, self._sign, request))
        return await continuation(details._replace(metadata=metadata), request)


class _AioStreamSigner(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[type-arg]
    def __init__(self, sign: Signer) -> None:
        self._sign = sign

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = grpc.aio.Metadata(*_signed(details, self._sign, request))
        return await continuation(details._replace(metadata=metadata), request)
