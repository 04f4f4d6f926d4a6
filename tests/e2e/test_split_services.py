"""End to end through four server processes, one per service, sharing one event and view store.

The split deployment of deploy/: customer, case, feedback and the query API each run as a
`crm-server --services X` of their own. Exactly one process projects and one runs the deadline
process, so no view is written twice over: on SQLite and on PostgreSQL alone, the timeline
server's in-process projector and the case server's deadline process; in the deploy/ shape
(PostgreSQL and Kafka), no server does either: a relay, a Kafka worker per projection and a
deadline worker, each a process of its own, do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from crm.personal.keys import new_master_key_text
from crm.v1 import (
    case_events_pb2,
    case_service_pb2,
    common_pb2,
    customer_events_pb2,
    customer_service_pb2,
    feedback_service_pb2,
    timeline_service_pb2,
)
from projections.catalogue import PROJECTION_NAMES
from tests.grpc_client import Client, poll, stamp
from tests.server_process import ServerProcess

pytestmark = pytest.mark.e2e

# The event, view and key store URLs every process shares, by store kind, given the test's
# request (for fixtures) and a fresh directory.
StoreUrls = Callable[[pytest.FixtureRequest, Path], tuple[str, str, str]]


def _sqlite(_request: pytest.FixtureRequest, shared: Path) -> tuple[str, str, str]:
    return (
        f"sqlite:///{shared}/events.db",
        f"sqlite:///{shared}/views.db",
        f"sqlite:///{shared}/keys.db",
    )


def _postgresql(request: pytest.FixtureRequest, _shared: Path) -> tuple[str, str, str]:
    """New databases of the session's PostgreSQL, as deploy/ gives the stores theirs; the four
    processes open and migrate them together at start."""
    server = request.getfixturevalue("postgres_server")
    suffix = uuid.uuid4().hex[:12]
    return (
        server.create_database(f"split_events_{suffix}"),
        server.create_database(f"split_views_{suffix}"),
        server.create_database(f"split_keys_{suffix}"),
    )


STORES: dict[str, StoreUrls] = {
    "sqlite": _sqlite,
    "postgresql": _postgresql,
    "postgresql-kafka": _postgresql,
}
OFF = ("--projector", "off", "--deadlines", "off")
ROLES = {
    "customer": OFF,
    "case": ("--projector", "off"),  # the one deadline process
    "feedback": OFF,
    "timeline": ("--deadlines", "off"),  # the one projector
}


@dataclass
class Split:
    """The four servers, by the service each serves, and the workers beside them (Kafka)."""

    servers: dict[str, ServerProcess]
    workers: dict[str, subprocess.Popen[bytes]]
    logs: Path

    def client(self, service: str) -> Client:
        return Client(self.servers[service].access, prefix=f"split-{service}")


def _workers(
    request: pytest.FixtureRequest, logs: Path, events: str, views: str, keys: tuple[str, ...]
) -> dict[str, subprocess.Popen[bytes]]:
    """The deploy/ shape's workers on the session's Kafka broker, topics of this test's own."""
    broker = request.getfixturevalue("kafka_broker")
    kafka = (
        *("--bootstrap", broker.bootstrap, "--partitions", "3"),
        *("--namespace", f"split{uuid.uuid4().hex[:8]}."),
    )
    commands = {
        "relay": ["relay", "--event-store-url", events, "--checkpoint-url", views, *kafka],
        "deadlines": [
            *("deadline_worker", "--event-store-url", events),
            *("--deadline-checkpoint-url", views),
            *keys,
        ],
        **{
            f"worker-{name}": [
                *("projection_worker", "--projection", name, "--read-store-url", views, *kafka)
            ]
            for name in PROJECTION_NAMES
        },
    }
    started = {}
    for name, (module, *args) in commands.items():
        with (logs / f"{name}.log").open("w") as log:
            started[name] = subprocess.Popen(
                [sys.executable, "-m", f"services.entrypoints.{module}", *args],
                stdout=log,
                stderr=log,
                env={**os.environ, "CRM_LOG_FORMAT": "json"},
            )
    return started


@pytest.fixture(params=sorted(STORES))
def split(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Split]:
    shared = tmp_path / "shared"
    shared.mkdir()
    events, views, key_store = STORES[request.param](request, shared.resolve())
    # Every process that seals or opens personal data shares the key store and the master key.
    master = shared / "master.key"
    master.write_bytes(new_master_key_text())
    keys = ("--key-store-url", key_store, "--master-key-file", str(master))
    on_kafka = request.param.endswith("kafka")
    servers: dict[str, ServerProcess] = {}
    workers: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for service, role in ROLES.items():
            servers[service] = ServerProcess(
                tmp_path / service,  # its own data dir: the deadline checkpoint stays apart
                tmp_path / f"{service}.log",
                *("--services", service),
                *("--event-store-url", events, "--read-store-url", views),
                *keys,
                *(OFF if on_kafka else role),
            )
        if on_kafka:
            workers = _workers(request, tmp_path, events, views, keys)
        yield Split(servers, workers, tmp_path)
        for service, server in servers.items():
            assert server.terminate() == 0, f"{service}: {server.log_path.read_text()}"
    finally:
        for server in servers.values():
            if server.process.poll() is None:
                server.kill()
        for worker in workers.values():
            worker.send_signal(signal.SIGTERM)
        for worker in workers.values():
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()


def test_a_story_told_to_four_servers_shows_on_the_timeline_server(split: Split) -> None:
    clients = {service: split.client(service) for service in ROLES}
    # One clock dates every command, whichever server takes it, so the story keeps its order.
    # Recent enough that no SLA timer fires during the test.
    clock = Client(split.servers["customer"].access, history=timedelta(minutes=20))
    try:
        for service, client in clients.items():
            _only_its_own_service_answers(service, client)
        customer_id, case_id = _tell_story(clients, clock)
        expected = [
            ("crm.customer.CustomerRegistered.v1", common_pb2.CHANNEL_UNSPECIFIED),
            ("crm.case.CaseOpened.v1", common_pb2.CHANNEL_EMAIL),
            ("crm.case.ContactRecorded.v1", common_pb2.CHANNEL_EMAIL),
            ("crm.feedback.SurveySubmitted.v1", common_pb2.CHANNEL_WEB_FORM),
        ]
        query = clients["timeline"]
        # Through Kafka the workers may still be joining their groups: a generous bound.
        entries = poll(lambda: _story_entries(query, customer_id, len(expected)), timeout=120)
        assert [(e.event_type, e.channel) for e in entries] == expected
        assert all(e.case_id == case_id for e in entries[1:])
        # Each projection is its own worker through Kafka: the case view may come a moment later.
        view = poll(lambda: _case_view(query, case_id, contacts=1), timeout=120)
        assert view.contact_count == 1
        assert view.status == case_events_pb2.CASE_STATUS_OPEN
        # The deadline process in the case server followed the shared store and applied the SLA.
        kinds = (timeline_service_pb2.ENTRY_KIND_SLA,)
        sla = poll(lambda: query.whole_timeline(customer_id, kinds), timeout=120)
        assert sla[0].summary.startswith("SLA policy default-1 applied: first response due")
        running = {s for s, server in split.servers.items() if _ran_deadlines(server)}
        if split.workers:
            assert running == set(), "the deadline worker alone, no server"
            assert '"deadline worker active"' in (split.logs / "deadlines.log").read_text()
        else:
            assert running == {"case"}, "one deadline process, in the case server alone"
    finally:
        for client in (*clients.values(), clock):
            client.close()


def _case_view(client: Client, case_id: str, contacts: int) -> Any:
    """The case view once it shows `contacts` contacts; None before (not projected yet)."""
    try:
        view = client.timeline.GetCaseView(timeline_service_pb2.GetCaseViewRequest(case_id=case_id))
    except grpc.RpcError as error:
        if error.code() is grpc.StatusCode.NOT_FOUND:
            return None
        raise
    return view if view.contact_count == contacts else None


def _ran_deadlines(server: ServerProcess) -> bool:
    """Whether the server's log shows a deadline process starting in it."""
    return '"message": "deadline process' in server.log_path.read_text()


def _only_its_own_service_answers(service: str, client: Client) -> None:
    """Each server is healthy for its service and answers UNIMPLEMENTED for the others."""
    health = health_pb2_grpc.HealthStub(client.channel)
    full = f"crm.v1.{service.capitalize()}Service"
    reply = health.Check(health_pb2.HealthCheckRequest(service=full))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    probes: dict[str, Callable[[], object]] = {
        "customer": lambda: client.customers.GetCustomer(
            customer_service_pb2.GetCustomerRequest(customer_id="nobody")
        ),
        "case": lambda: client.cases.GetCase(case_service_pb2.GetCaseRequest(case_id="none")),
        "feedback": lambda: client.feedback.GetFeedback(
            feedback_service_pb2.GetFeedbackRequest(feedback_id="none")
        ),
        "timeline": lambda: client.timeline.GetCaseView(
            timeline_service_pb2.GetCaseViewRequest(case_id="none")
        ),
    }
    for other, probe in probes.items():
        with pytest.raises(grpc.RpcError) as refused:
            probe()
        expected = grpc.StatusCode.NOT_FOUND if other == service else grpc.StatusCode.UNIMPLEMENTED
        assert refused.value.code() is expected, f"{other} on the {service} server"


def _tell_story(clients: dict[str, Client], clock: Client) -> tuple[str, str]:
    customers, cases, feedback = clients["customer"], clients["case"], clients["feedback"]
    customer_id = customers.customers.RegisterCustomer(
        customer_service_pb2.RegisterCustomerRequest(
            context=clock.context(),
            name="Yui Sato",
            language="ja",
            segment=customer_events_pb2.SEGMENT_B2C,
        )
    ).aggregate_id
    case_id = cases.cases.OpenCase(
        case_service_pb2.OpenCaseRequest(
            context=clock.context(),
            customer_id=customer_id,
            channel=common_pb2.CHANNEL_EMAIL,
            category=case_events_pb2.CATEGORY_SHIPPING_FEES,
            priority=common_pb2.PRIORITY_NORMAL,
            subject="Parcel not delivered",
        )
    ).aggregate_id
    cases.cases.RecordContact(
        case_service_pb2.RecordContactRequest(
            context=clock.context(),
            case_id=case_id,
            channel=common_pb2.CHANNEL_EMAIL,
            direction=common_pb2.DIRECTION_OUTBOUND,
            handled_by=common_pb2.Actor(kind=common_pb2.ACTOR_KIND_AGENT, id="agent-3"),
            outcome=case_events_pb2.CONTACT_OUTCOME_ANSWERED,
            started_at=stamp(clock.clock),
        )
    )
    feedback.feedback.SubmitSurvey(
        feedback_service_pb2.SubmitSurveyRequest(
            context=clock.context(actor_id=customer_id, kind=common_pb2.ACTOR_KIND_CUSTOMER),
            customer_id=customer_id,
            case_id=case_id,
            channel=common_pb2.CHANNEL_WEB_FORM,
            csat=5,
        )
    )
    return customer_id, case_id


STORY_KINDS = (
    timeline_service_pb2.ENTRY_KIND_CUSTOMER,
    timeline_service_pb2.ENTRY_KIND_CASE,
    timeline_service_pb2.ENTRY_KIND_CONTACT,
    timeline_service_pb2.ENTRY_KIND_FEEDBACK,
)


def _story_entries(
    client: Client, customer_id: str, count: int
) -> list[timeline_service_pb2.TimelineEntry] | None:
    entries = client.whole_timeline(customer_id, STORY_KINDS)
    assert len(entries) <= count, f"more entries than recorded: {len(entries)} > {count}"
    return entries if len(entries) == count else None
