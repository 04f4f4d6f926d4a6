"""The error mapping is the server's first interceptor: it maps what servicers raise, unary and
streaming alike, and what interceptors after it raise (authentication will be one of them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeAlias

import grpc
import pytest

from bench.server_thread import ServerThread
from crm import errors
from crm.settings import Settings
from crm.v1 import case_service_pb2, customer_service_pb2, timeline_service_pb2
from services.bootstrap import System, build_system
from tests.grpc_client import Client

C = grpc.StatusCode
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = Callable[[grpc.HandlerCallDetails], Awaitable[Handler]]


def _method(details: grpc.HandlerCallDetails) -> str:
    return details.method.rsplit("/", 1)[-1]


class RefusingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Raises before a handler is chosen, as a missing credential would."""

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler:
        missing = ("credential", "missing") in (details.invocation_metadata or ())
        if missing or _method(details) in {"GetCase", "GetTimeline"}:
            raise errors.Unauthenticated("no bearer token")
        return await continuation(details)


class ReplacingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Swaps a handler's behaviour for one that fails while the call runs, as a role check would."""

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler:
        handler = await continuation(details)
        if _method(details) == "GetCustomer":

            async def denied(request: Any, context: Any) -> Any:
                raise errors.PermissionDenied("auditors may not read customers")

            return grpc.unary_unary_rpc_method_handler(
                denied, handler.request_deserializer, handler.response_serializer
            )
        if _method(details) == "WatchTimeline" and ("broken", "1") in (
            details.invocation_metadata or ()
        ):

            async def broken(request: Any, context: Any) -> AsyncIterator[Any]:
                yield timeline_service_pb2.TimelineEntry(event_id="e-1")
                raise RuntimeError("secret detail /var/lib/crm")

            return grpc.unary_stream_rpc_method_handler(
                broken, handler.request_deserializer, handler.response_serializer
            )
        return handler


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    data_dir: Path = tmp_path_factory.mktemp("interceptors")
    system: System = build_system(Settings.defaults(data_dir=data_dir))
    server = ServerThread(system, interceptors=[RefusingInterceptor(), ReplacingInterceptor()])
    client = Client(server.access, prefix="intercepted")
    yield client
    client.close()
    server.stop(1)
    system.close()


def _code(call: Callable[[], object]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value.code(), refused.value.details() or ""


def test_an_error_raised_by_a_later_interceptor_is_mapped(client: Client) -> None:
    code, message = _code(
        lambda: client.cases.GetCase(case_service_pb2.GetCaseRequest(case_id="k-1"))
    )
    assert (code, message) == (C.UNAUTHENTICATED, "no bearer token")
    request = timeline_service_pb2.GetTimelineRequest(customer_id="c-1")
    assert _code(lambda: client.timeline.GetTimeline(request))[0] is C.UNAUTHENTICATED
    watch = timeline_service_pb2.WatchTimelineRequest(customer_id="c-1")
    missing = (("credential", "missing"),)
    code, message = _code(
        lambda: list(client.timeline.WatchTimeline(watch, timeout=10, metadata=missing))
    )
    assert (code, message) == (C.UNAUTHENTICATED, "no bearer token")


def test_an_error_raised_by_a_replaced_handler_is_mapped(client: Client) -> None:
    request = customer_service_pb2.GetCustomerRequest(customer_id="c-1")
    code, message = _code(lambda: client.customers.GetCustomer(request))
    assert (code, message) == (C.PERMISSION_DENIED, "auditors may not read customers")


def test_a_servicer_error_in_a_stream_is_mapped(client: Client) -> None:
    request = timeline_service_pb2.WatchTimelineRequest(customer_id="")
    code, message = _code(lambda: list(client.timeline.WatchTimeline(request, timeout=10)))
    assert code is C.INVALID_ARGUMENT
    assert "customer_id" in message


def test_an_unexpected_error_after_a_streamed_reply_is_internal_and_generic(
    client: Client,
) -> None:
    request = timeline_service_pb2.WatchTimelineRequest(customer_id="c-1")
    received: list[str] = []

    def watch() -> None:
        call = client.timeline.WatchTimeline(request, timeout=10, metadata=(("broken", "1"),))
        received.extend(entry.event_id for entry in call)

    code, message = _code(watch)
    assert received == ["e-1"]
    assert code is C.INTERNAL
    assert message.startswith("internal error ") and "secret" not in message


def test_a_command_still_maps_its_domain_errors(client: Client) -> None:
    request = customer_service_pb2.RegisterCustomerRequest(context=client.context(), name="x")
    assert _code(lambda: client.customers.RegisterCustomer(request))[0] is C.INVALID_ARGUMENT
