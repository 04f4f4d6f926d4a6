"""The one place where errors become gRPC status codes: a server interceptor around every RPC.

Servicers raise the errors of crm.errors and never abort by hand. Anything unexpected becomes
INTERNAL with a generic message and an error id that is logged with the traceback, so a caller can
quote it without the server leaking its internals.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeAlias

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
    (errors.OperationalError, grpc.StatusCode.UNAVAILABLE),
)


def status_for(error: Exception) -> tuple[grpc.StatusCode, str]:
    """The status code and caller-facing message for an error."""
    for error_type, code in STATUS_OF:
        if isinstance(error, error_type):
            return code, str(error)
    error_id = uuid.uuid4().hex[:12]
    log.error("internal error %s", error_id, exc_info=error)
    return grpc.StatusCode.INTERNAL, f"internal error {error_id}; the server log has the details"


def _abort(context: grpc.ServicerContext, error: Exception) -> None:
    code, message = status_for(error)
    if code is not grpc.StatusCode.INTERNAL:
        log.info("refused: %s %s", code.name, message)
    context.abort(code, message)


class ErrorMappingInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Maps every exception a servicer raises to its status code."""

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Handler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _wrap_unary(behaviour: Callable[[Any, grpc.ServicerContext], Any]) -> Any:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return behaviour(request, context)
        except Exception as error:
            if _is_abort(error):
                raise
            _abort(context, error)

    return wrapped


def _wrap_stream(behaviour: Callable[[Any, grpc.ServicerContext], Iterator[Any]]) -> Any:
    def wrapped(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from behaviour(request, context)
        except Exception as error:
            if _is_abort(error):
                raise
            _abort(context, error)

    return wrapped


def _is_abort(error: Exception) -> bool:
    """context.abort raises a plain Exception that must pass through untouched."""
    return type(error) is Exception and not error.args
