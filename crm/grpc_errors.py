"""The one place where errors become gRPC status codes: an asyncio server interceptor.

Servicers raise the errors of crm.errors and never abort by hand. Anything unexpected becomes
INTERNAL with a generic message and an error id that is logged with the traceback, so a caller can
quote it without the server leaking its internals.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

import grpc

from crm import errors

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]

STATUS_OF: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (errors.InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.InvariantViolated, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.ConcurrencyConflict, grpc.StatusCode.ABORTED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.OperationalError, grpc.StatusCode.UNAVAILABLE),
    (errors.HistoryBroken, grpc.StatusCode.DATA_LOSS),
    (errors.PersonalDataUnreadable, grpc.StatusCode.DATA_LOSS),
)


def status_for(error: Exception) -> tuple[grpc.StatusCode, str]:
    """The status code and caller-facing message for an error."""
    for error_type, code in STATUS_OF:
        if isinstance(error, error_type):
            if code is grpc.StatusCode.DATA_LOSS:
                # An alert for the operators: stored history no longer matches its hashes, or
                # personal data no longer opens.
                error_id = uuid.uuid4().hex[:12]
                what = "broken history" if isinstance(error, errors.HistoryBroken) else "data loss"
                log.error("ALERT %s, error %s: %s", what, error_id, error)
                return code, f"{error} (error {error_id}); nothing was recorded"
            return code, str(error)
    error_id = uuid.uuid4().hex[:12]
    log.error("internal error %s", error_id, exc_info=error)
    return grpc.StatusCode.INTERNAL, f"internal error {error_id}; the server log has the details"


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: Exception) -> NoReturn:
    code, message = status_for(error)
    if code is not grpc.StatusCode.INTERNAL:
        log.info("refused: %s %s", code.name, message)
    await context.abort(code, message)


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Maps every exception a servicer raises to its status code.

    Put it first in the server's interceptors: a handler that an interceptor after it returns
    (or an error it raises while choosing one, such as a missing credential) is mapped too.
    Async behaviours are wrapped, unary and streaming alike; a synchronous one (none is
    registered here) is left as it is, since grpc.aio runs it on a thread where no coroutine
    of the context can be awaited.
    """

    async def intercept_service(  # type: ignore[override]  # the stubs forget None (no such method)
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        try:
            handler = await continuation(handler_call_details)
        except Exception as error:
            if isinstance(error, grpc.aio.AbortError):
                raise
            return grpc.unary_unary_rpc_method_handler(_refusal(error))
        if handler is None:
            return None
        if handler.unary_unary is not None and inspect.iscoroutinefunction(handler.unary_unary):
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            behaviour = handler.unary_stream
            if inspect.isasyncgenfunction(behaviour):
                wrapped = _wrap_stream(behaviour)
            elif inspect.iscoroutinefunction(behaviour):  # writes with context.write
                wrapped = _wrap_unary(behaviour)
            else:
                return handler
            return grpc.unary_stream_rpc_method_handler(
                wrapped,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _refusal(error: Exception) -> Any:
    """A behaviour that answers any call with the status of an error raised before it began."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await _abort(context, error)

    return refuse


def _wrap_unary(behaviour: Callable[[Any, Any], Awaitable[Any]]) -> Any:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            return await behaviour(request, context)
        except Exception as error:
            if isinstance(error, grpc.aio.AbortError):  # the context aborted already
                raise
            await _abort(context, error)

    return wrapped


def _wrap_stream(behaviour: Callable[[Any, Any], AsyncIterator[Any]]) -> Any:
    async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        # aclosing: when the call ends early (cancelled, server stopping), the servicer's
        # generator is closed at once and its `finally` runs now, not whenever it is collected.
        try:
            async with aclosing(behaviour(request, context)) as replies:  # type: ignore[type-var]
                async for reply in replies:
                    yield reply
        except Exception as error:
            if isinstance(error, grpc.aio.AbortError):
                raise
            await _abort(context, error)

    return wrapped
