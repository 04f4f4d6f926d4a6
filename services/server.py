"""The embedded system in one process: all four gRPC services, the stores and the projector.

`crm-server` (or `make run`) starts it. It registers gRPC health checking and server reflection,
logs where it listens, and on SIGTERM or Ctrl-C stops taking calls, lets running calls finish
within a grace period, stops the projector and closes the stores.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from concurrent import futures
from pathlib import Path
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from crm import logs
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
from services.bootstrap import Config, System, build_system
from services.case.grpc_api import CaseServicer
from services.customer.grpc_api import CustomerServicer
from services.feedback.grpc_api import FeedbackServicer
from services.timeline.grpc_api import TimelineServicer

log = logging.getLogger("crm.server")

SERVICE_NAMES = (
    customer_service_pb2.DESCRIPTOR.services_by_name["CustomerService"].full_name,
    case_service_pb2.DESCRIPTOR.services_by_name["CaseService"].full_name,
    feedback_service_pb2.DESCRIPTOR.services_by_name["FeedbackService"].full_name,
    timeline_service_pb2.DESCRIPTOR.services_by_name["TimelineService"].full_name,
)


def create_server(system: System, listen: str, workers: int = 16) -> tuple[grpc.Server, int]:
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
        TimelineServicer(system.read_store, system.stopping, system.clock), server
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in (*SERVICE_NAMES, ""):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    return server, port


def serve(config: Config) -> None:
    """Run until SIGTERM or SIGINT, then shut down in order."""
    system = build_system(config)
    if system.projector is not None:
        system.projector.start()
    if system.deadlines is not None:
        system.deadlines.start()
    server, port = create_server(system, config.listen)
    server.start()
    host = config.listen.rsplit(":", 1)[0]
    log.info(
        "listening on %s:%d",
        host,
        port,
        extra={"port": port, "event_store": config.events_url, "read_store": config.views_url},
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stop.wait()
    system.stopping.set()
    server.stop(config.grace_seconds).wait()
    system.close()
    log.info("stopped")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="crm-server", description=__doc__)
    parser.add_argument("--listen", default=os.environ.get("CRM_LISTEN", "127.0.0.1:50051"))
    parser.add_argument("--data-dir", default=os.environ.get("CRM_DATA_DIR", "var"))
    parser.add_argument("--event-store-url", default=os.environ.get("CRM_EVENT_STORE_URL", ""))
    parser.add_argument("--read-store-url", default=os.environ.get("CRM_READ_STORE_URL", ""))
    parser.add_argument(
        "--projector",
        choices=("in-process", "off"),
        default=os.environ.get("CRM_PROJECTOR", "in-process"),
        help="off when Kafka workers maintain the read store (the distributed shape)",
    )
    parser.add_argument(
        "--deadlines",
        choices=("in-process", "off"),
        default=os.environ.get("CRM_DEADLINES", "in-process"),
        help="off when the deadline process runs as a worker of its own (crm-deadline-worker)",
    )
    parser.add_argument(
        "--sla-policy-file",
        type=Path,
        default=os.environ.get("CRM_SLA_POLICY_FILE") or None,
        help="JSON SLA policy (see deploy/sla-policy.example.json); built-in defaults otherwise",
    )
    parser.add_argument(
        "--compensation-limits-file",
        type=Path,
        default=os.environ.get("CRM_COMPENSATION_LIMITS_FILE") or None,
        help='JSON {"currency": "JPY", "default_minor": 10000, "agents": {"agent-7": 30000}}',
    )
    parser.add_argument(
        "--log-format",
        choices=("auto", "json", "text"),
        default=os.environ.get("CRM_LOG_FORMAT", "auto"),
    )
    args = parser.parse_args(argv)
    logs.configure(args.log_format)
    serve(
        Config(
            listen=args.listen,
            data_dir=Path(args.data_dir),
            event_store_url=args.event_store_url,
            read_store_url=args.read_store_url,
            in_process_projector=args.projector == "in-process",
            deadline_process=args.deadlines == "in-process",
            sla_policy_file=args.sla_policy_file,
            compensation_limits_file=args.compensation_limits_file,
        )
    )


if __name__ == "__main__":
    main()
