"""The gRPC server: the services it is told to serve, health checking and reflection.

An asyncio server (grpc.aio): servicers are coroutines, their blocking store and view-store work
runs on a bounded pool of threads (`STORE_THREADS`), and a streaming watch that waits for news
holds no thread at all, so open watches never starve other calls. One server serves all five
services (the embedded system) or any of them (`services`), so each can run and scale apart.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer as AsyncHealthServicer  # health.aio
from grpc_reflection.v1alpha import reflection

from crm.blocking import BlockingPool
from crm.command_handling import Clock
from crm.eventstore.port import EventStore
from crm.grpc_errors import ErrorMappingInterceptor
from crm.personal.cipher import PersonalData
from crm.seals import SealKey
from crm.v1 import (
    audit_service_pb2,
    audit_service_pb2_grpc,
    case_service_pb2,
    case_service_pb2_grpc,
    customer_service_pb2,
    customer_service_pb2_grpc,
    feedback_service_pb2,
    feedback_service_pb2_grpc,
    timeline_service_pb2,
    timeline_service_pb2_grpc,
)
from projections.store.port import ViewStore
from services.audit.grpc_api import AuditServicer
from services.case.application import CaseApplication
from services.case.grpc_api import CaseServicer
from services.customer.application import CustomerApplication
from services.customer.grpc_api import CustomerServicer
from services.feedback.application import FeedbackApplication
from services.feedback.grpc_api import FeedbackServicer
from services.server_security import ServerSecurity
from services.store_health import StoreHealth
from services.timeline.grpc_api import TimelineServicer

FULL_NAMES: Mapping[str, str] = {
    "customer": customer_service_pb2.DESCRIPTOR.services_by_name["CustomerService"].full_name,
    "case": case_service_pb2.DESCRIPTOR.services_by_name["CaseService"].full_name,
    "feedback": feedback_service_pb2.DESCRIPTOR.services_by_name["FeedbackService"].full_name,
    "timeline": timeline_service_pb2.DESCRIPTOR.services_by_name["TimelineService"].full_name,
    "audit": audit_service_pb2.DESCRIPTOR.services_by_name["AuditService"].full_name,
}
"""The gRPC name (health, reflection) of each service, by the name the `services` setting uses."""
STORE_THREADS = 16
"""Threads running the servicers' blocking store and view-store calls, and so at most as many
SQLite connections per store; calls beyond it queue without a thread. As many as the thread pool
of the synchronous server had; watches waiting for news use none."""


class Served(Protocol):
    """What the services serve: the applications, the view store, a stop flag and the clock."""

    @property
    def customers(self) -> CustomerApplication: ...
    @property
    def cases(self) -> CaseApplication: ...
    @property
    def feedback(self) -> FeedbackApplication: ...
    @property
    def store(self) -> EventStore: ...
    @property
    def view_store(self) -> ViewStore: ...
    @property
    def stopping(self) -> threading.Event: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def seal_key(self) -> SealKey | None: ...
    @property
    def personal(self) -> PersonalData | None: ...


Register = Callable[[Served, BlockingPool, grpc.aio.Server], None]


def _customer(system: Served, io: BlockingPool, server: grpc.aio.Server) -> None:
    servicer = CustomerServicer(system.customers, io)
    customer_service_pb2_grpc.add_CustomerServiceServicer_to_server(servicer, server)


def _case(system: Served, io: BlockingPool, server: grpc.aio.Server) -> None:
    case_service_pb2_grpc.add_CaseServiceServicer_to_server(CaseServicer(system.cases, io), server)


def _feedback(system: Served, io: BlockingPool, server: grpc.aio.Server) -> None:
    servicer = FeedbackServicer(system.feedback, io)
    feedback_service_pb2_grpc.add_FeedbackServiceServicer_to_server(servicer, server)


def _timeline(system: Served, io: BlockingPool, server: grpc.aio.Server) -> None:
    servicer = TimelineServicer(system.view_store, system.stopping, system.clock, io)
    timeline_service_pb2_grpc.add_TimelineServiceServicer_to_server(servicer, server)


def _audit(system: Served, io: BlockingPool, server: grpc.aio.Server) -> None:
    key = system.seal_key
    servicer = AuditServicer(
        system.store,
        system.view_store,
        io,
        None if key is None else key.public,
        clock=system.clock,
        personal=system.personal,
    )
    audit_service_pb2_grpc.add_AuditServiceServicer_to_server(servicer, server)


REGISTER: Mapping[str, Register] = {
    "customer": _customer,
    "case": _case,
    "feedback": _feedback,
    "timeline": _timeline,
    "audit": _audit,
}
"""How each service joins a server, by its setting name: a server registers only those named."""


class GrpcServer:
    """The asyncio server of its services, bound to its port, with its pool of store threads.

    Start and stop it on the event loop it was created on (grpc.aio binds a server to one loop).
    """

    def __init__(
        self,
        server: grpc.aio.Server,
        port: int,
        io: BlockingPool,
        health: AsyncHealthServicer,
        system: Served,
        served: Sequence[str],
        health_server: HealthOnly | None = None,
    ) -> None:
        self.port = port
        self.served = tuple(served)  # the gRPC names of the services registered
        self.health_port = health_server.port if health_server else None
        self._health_server = health_server
        self._server = server
        self._io = io
        self._health = health
        self._system = system
        self._loop = asyncio.get_running_loop()
        self._store_health = StoreHealth.of_stores(
            health, self.served, system.store, system.view_store
        )
        self._probing: asyncio.Task[None] | None = None

    def stop_serving_health(self, reason: str) -> None:
        """Report every service served NOT_SERVING from now on; callable from any thread.

        For a store that can no longer write where it was opened: load balancers and
        orchestrators stop sending calls, which would all be refused as UNAVAILABLE anyway.
        """
        del reason  # the store logged it
        self._store_health.lost_for_good = True

        async def not_serving() -> None:
            for name in (*self.served, ""):
                await self._health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)

        if not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(not_serving(), self._loop)

    async def start(self) -> None:
        await self._server.start()
        self._probing = asyncio.create_task(self._store_health.run(), name="store-health")
        if self._health_server is not None:
            await self._health_server.server.start()

    async def stop(self, grace: float) -> None:
        """Stop taking calls, end the watches, let running calls finish within `grace` seconds.

        Calls still running after `grace` are cancelled. Returns once the blocking calls they
        started have returned too, so the stores may be closed next.
        """
        if self._probing is not None:
            self._probing.cancel()
        self._store_health.close()
        await self._health.enter_graceful_shutdown()
        self._system.stopping.set()
        self._system.view_store.notify_changed()  # wakes every watch, which then sees the flag
        await self._server.stop(grace)
        if self._health_server is not None:
            await self._health_server.server.stop(0)
        await asyncio.to_thread(self._io.shutdown)


PENDING_CALLS = 100_000


@dataclass(frozen=True)
class HealthOnly:
    """A plaintext server of the health service alone, beside a server that speaks TLS only.

    Kubernetes' gRPC probes cannot speak TLS; this one answers them from the same health
    servicer, so it reports what the main server reports. Health checking needs no credential,
    and the service says nothing about any customer.
    """

    server: grpc.aio.Server
    port: int


def _health_only(health_servicer: AsyncHealthServicer, listen: str) -> HealthOnly:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        port = server.add_insecure_port(listen)
    except RuntimeError:  # what grpc raises when it cannot bind
        port = 0
    if port == 0:
        raise HealthPortUnavailable(
            f"cannot listen on {listen}: in use, or not an address of this machine"
        )
    return HealthOnly(server, port)


class HealthPortUnavailable(OSError):
    """The plaintext health address cannot be bound (told apart from the main address)."""


async def create_server(
    system: Served,
    listen: str,
    *,
    security: ServerSecurity,
    services: Sequence[str] | None = None,
    store_threads: int = STORE_THREADS,
    max_concurrent_calls: int = 1000,
    health_listen: str = "",
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),  # type: ignore[type-arg]
) -> GrpcServer:
    """A server with the named services (all when None) registered and bound to `listen`.

    Call it on the event loop that will run the server. Health reports each service registered,
    and the server as a whole (""), SERVING; reflection lists only those. The error mapping is the
    first interceptor, so it also maps what authentication and the given ones raise.
    """
    services = tuple(REGISTER) if services is None else services
    unknown = [name for name in services if name not in REGISTER]
    if unknown or not services:
        raise ValueError(f"services {list(services)}: give one or more of {', '.join(REGISTER)}")
    io = BlockingPool(store_threads, name="store-io")
    server = grpc.aio.server(
        interceptors=[ErrorMappingInterceptor(), security.interceptor(), *interceptors],
        # Over capacity, calls beyond the limit are refused at once with RESOURCE_EXHAUSTED, a
        # code a caller can back off on; the core's own queue of calls not yet taken by the
        # loop is made large enough never to shed them first, as it would, with CANCELLED.
        maximum_concurrent_rpcs=max_concurrent_calls,
        options=[
            # Without SO_REUSEPORT a second server on a taken port fails to start instead of
            # silently sharing the port with the first.
            ("grpc.so_reuseport", 0),
            ("grpc.server.max_pending_requests", PENDING_CALLS),
            ("grpc.server.max_pending_requests_hard_limit", PENDING_CALLS),
            *security.options(),
        ],
    )
    served = [FULL_NAMES[name] for name in REGISTER if name in services]
    for name in REGISTER:
        if name in services:
            REGISTER[name](system, io, server)
    health_servicer = AsyncHealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in (*served, ""):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*served, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        port = security.add_port(server, listen)
    except RuntimeError:  # what grpc raises when it cannot bind
        port = 0
    if port == 0:
        io.shutdown()
        raise OSError(f"cannot listen on {listen}: in use, or not an address of this machine")
    try:
        health_only = _health_only(health_servicer, health_listen) if health_listen else None
    except OSError:
        io.shutdown()
        raise
    return GrpcServer(server, port, io, health_servicer, system, served, health_only)
