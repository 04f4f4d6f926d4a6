"""The gRPC server of the embedded system: every service, health checking and reflection."""

from __future__ import annotations

import threading
from concurrent import futures
from typing import Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from crm.command_handling import Clock
from crm.grpc_errors import ErrorMappingInterceptor
from crm.v1 import (
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
from services.case.application import CaseApplication
from services.case.grpc_api import CaseServicer
from services.customer.application import CustomerApplication
from services.customer.grpc_api import CustomerServicer
from services.feedback.application import FeedbackApplication
from services.feedback.grpc_api import FeedbackServicer
from services.timeline.grpc_api import TimelineServicer

SERVICE_NAMES = (
    customer_service_pb2.DESCRIPTOR.services_by_name["CustomerService"].full_name,
    case_service_pb2.DESCRIPTOR.services_by_name["CaseService"].full_name,
    feedback_service_pb2.DESCRIPTOR.services_by_name["FeedbackService"].full_name,
    timeline_service_pb2.DESCRIPTOR.services_by_name["TimelineService"].full_name,
)


class Served(Protocol):
    """What the services serve: the applications, the view store, a stop flag and the clock."""

    @property
    def customers(self) -> CustomerApplication: ...
    @property
    def cases(self) -> CaseApplication: ...
    @property
    def feedback(self) -> FeedbackApplication: ...
    @property
    def view_store(self) -> ViewStore: ...
    @property
    def stopping(self) -> threading.Event: ...
    @property
    def clock(self) -> Clock: ...


def create_server(system: Served, listen: str, workers: int = 16) -> tuple[grpc.Server, int]:
    """A started-ready server with every service registered; returns it and the bound port."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="grpc"),
        interceptors=[ErrorMappingInterceptor()],
    )
    customer_service_pb2_grpc.add_CustomerServiceServicer_to_server(
        CustomerServicer(system.customers), server
    )
    case_service_pb2_grpc.add_CaseServiceServicer_to_server(CaseServicer(system.cases), server)
    feedback_service_pb2_grpc.add_FeedbackServiceServicer_to_server(
        FeedbackServicer(system.feedback), server
    )
    timeline_service_pb2_grpc.add_TimelineServiceServicer_to_server(
        TimelineServicer(system.view_store, system.stopping, system.clock), server
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in (*SERVICE_NAMES, ""):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    try:
        port = server.add_insecure_port(listen)
    except RuntimeError:  # what grpc raises when it cannot bind
        port = 0
    if port == 0:
        raise OSError(f"cannot listen on {listen}: in use, or not an address of this machine")
    return server, port
