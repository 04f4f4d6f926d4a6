"""Who is calling, and may they: the server interceptor in front of every RPC but health checks.

It reads the caller's credential (an `authorization: Bearer <JWT>` header, else a client
certificate the TLS handshake verified, which makes the caller a `service`), checks the access
table, holds the caller's share of the per-caller limits for the length of the call, and serves
the call as the principal (crm.identity), from which the servicers take the actor. It refuses by
raising the errors of crm.errors: the error mapping, the server's first interceptor, answers.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

from crm.errors import CrmError, PermissionDenied, Unauthenticated
from crm.grpc_errors import status_for
from crm.identity import Principal, Role, acting_as
from crm.tokens import KeySet, TokenRules, verify
from services.access import allowed_roles, is_public
from services.caller_limits import CallerLimits

if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Resolve: TypeAlias = Callable[[Context], Principal | None]

_BEARER = re.compile(r"bearer +(\S+)", re.IGNORECASE)
_SUBJECT = re.compile(r"[A-Za-z0-9._:@-]{1,128}")
NO_CREDENTIAL = "no credential; send the header authorization: Bearer <token>"


@dataclass(frozen=True)
class Authenticator:
    """How callers prove who they are: tokens checked against a key set, and maybe certificates."""

    keys: KeySet
    rules: TokenRules
    client_certificates: bool = False  # the TLS handshake requires and verifies them (mTLS)


class AuthenticationInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Authenticates (unless `authenticator` is None: authentication off), authorizes, limits.

    With authentication off every call is served without a principal (the request's actor is
    recorded as it is) and the limits count per network peer.
    """

    def __init__(
        self,
        authenticator: Authenticator | None,
        limits: CallerLimits,
        *,
        reflection_open: bool = False,
    ) -> None:
        self._authenticator = authenticator
        self._limits = limits
        self._reflection_open = reflection_open

    async def intercept_service(  # type: ignore[override]  # the stubs forget None
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(details)
        method = details.method
        if handler is None or is_public(method, reflection_open=self._reflection_open):
            return handler
        resolve = self._resolver(method, details.invocation_metadata or ())
        return self._wrap(handler, resolve)

    def _resolver(self, method: str, metadata: Sequence[tuple[str, Any]]) -> Resolve:
        """How the call's principal is found: at once from a token, else from its certificate."""
        authenticator = self._authenticator
        if authenticator is None:
            return lambda context: None
        token = _bearer(metadata)
        if token is not None:
            principal = verify(authenticator.keys, authenticator.rules, token)
            authorize(principal, method)
            return lambda context: principal
        if not authenticator.client_certificates:
            raise Unauthenticated(NO_CREDENTIAL)

        def from_certificate(context: Context) -> Principal:
            principal = certificate_principal(context.auth_context())
            authorize(principal, method)
            return principal

        return from_certificate

    def _wrap(self, handler: Handler, resolve: Resolve) -> Handler:
        serializers = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None and inspect.iscoroutinefunction(handler.unary_unary):
            behaviour = self._unary(handler.unary_unary, resolve, watch=False)
            return grpc.unary_unary_rpc_method_handler(behaviour, **serializers)
        if handler.unary_stream is not None:
            if inspect.isasyncgenfunction(handler.unary_stream):
                stream = self._stream(handler.unary_stream, resolve)
                return grpc.unary_stream_rpc_method_handler(stream, **serializers)
            if inspect.iscoroutinefunction(handler.unary_stream):  # writes with context.write
                behaviour = self._unary(handler.unary_stream, resolve, watch=True)
                return grpc.unary_stream_rpc_method_handler(behaviour, **serializers)
        if handler.stream_stream is not None and inspect.isasyncgenfunction(handler.stream_stream):
            return grpc.stream_stream_rpc_method_handler(
                _checked_stream(handler.stream_stream, resolve), **serializers
            )
        raise PermissionDenied("this method cannot be served with authentication")

    def _caller(self, principal: Principal | None, context: Context) -> str:
        return str(principal) if principal is not None else f"peer {context.peer()}"

    def _unary(
        self, behaviour: Callable[..., Awaitable[Any]], resolve: Resolve, *, watch: bool
    ) -> Any:
        async def served(request: Any, context: Context) -> Any:
            principal = resolve(context)
            caller = self._caller(principal, context)
            with self._limits.holding(caller, watch=watch), acting_as(principal):
                return await behaviour(request, context)

        return served

    def _stream(self, behaviour: Callable[..., AsyncIterator[Any]], resolve: Resolve) -> Any:
        async def served(request: Any, context: Context) -> AsyncIterator[Any]:
            principal = resolve(context)
            caller = self._caller(principal, context)
            with self._limits.holding(caller, watch=True), acting_as(principal):
                # aclosing: a call that ends early closes the servicer's generator now, in this
                # task, so the limit is given back at once.
                replies = behaviour(request, context)
                async with aclosing(replies):  # type: ignore[type-var]
                    async for reply in replies:
                        yield reply

        return served


def _checked_stream(behaviour: Callable[..., AsyncIterator[Any]], resolve: Resolve) -> Any:
    """A request-streaming behaviour (reflection) served only to a caller `resolve` accepts.

    The error mapping wraps no request-streaming behaviour, so the refusal uses its mapping here.
    """

    async def served(requests: Any, context: Context) -> AsyncIterator[Any]:
        try:
            resolve(context)
        except CrmError as error:
            code, message = status_for(error)
            await context.abort(code, message)
        replies = behaviour(requests, context)
        async with aclosing(replies):  # type: ignore[type-var]
            async for reply in replies:
                yield reply

    return served


def authorize(principal: Principal, method: str) -> None:
    """PermissionDenied unless the access table lets the principal's role call `method`."""
    if principal.role not in allowed_roles(method):
        name = method.rsplit("/", 1)[-1]
        raise PermissionDenied(f"the role {principal.role.value} may not call {name}")


def certificate_principal(auth_context: Mapping[str, Iterable[bytes]]) -> Principal:
    """The `service` a verified client certificate names by its common name."""
    names = list(auth_context.get("x509_common_name") or [])
    subject = names[0].decode(errors="replace") if names else ""
    if not _SUBJECT.fullmatch(subject):
        raise Unauthenticated(NO_CREDENTIAL + ", or a client certificate with a common name")
    return Principal(subject, Role.SERVICE)


def _bearer(metadata: Sequence[tuple[str, Any]]) -> str | None:
    values = [value for key, value in metadata if key == "authorization"]
    if not values:
        return None
    if len(values) > 1:
        raise Unauthenticated("more than one authorization header; send one")
    value = values[0].decode(errors="replace") if isinstance(values[0], bytes) else values[0]
    match = _BEARER.fullmatch(value.strip())
    if match is None:
        raise Unauthenticated("the authorization header is not Bearer <token>")
    return match.group(1)
