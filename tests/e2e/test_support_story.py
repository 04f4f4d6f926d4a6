"""End to end: a real server process, driven only through gRPC, killed and restarted.

A customer calls, the case is bounced between two departments, a chat follows, a poor CSAT and a
complaint arrive, the case is resolved and reopened. The timeline must show every step in order;
after SIGKILL and a restart the same timeline comes back, nothing lost or doubled; with the views
in the SQLite file of the data dir, and again in PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, timedelta
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from crm.v1 import (
    case_events_pb2,
    case_service_pb2,
    common_pb2,
    customer_events_pb2,
    customer_service_pb2,
    feedback_service_pb2,
    timeline_service_pb2,
)
from tests.grpc_client import Client, poll, stamp
from tests.postgres_server import PostgresServer
from tests.server_process import ServerProcess, event_store_flags

pytestmark = pytest.mark.e2e

SERVICES = {
    "crm.v1.CustomerService",
    "crm.v1.CaseService",
    "crm.v1.FeedbackService",
    "crm.v1.TimelineService",
}


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"


@pytest.fixture
def views_flags(request: pytest.FixtureRequest, event_store_url: str | None) -> tuple[str, ...]:
    """The server's view store: the SQLite file in the data dir beside an SQLite event store, a
    PostgreSQL database of its own beside a PostgreSQL one."""
    if event_store_url is None:
        return ()
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return ("--read-store-url", server.create_database(f"views_{uuid.uuid4().hex[:12]}"))


def test_support_story_survives_sigkill(
    data_dir: Path, tmp_path: Path, event_store_url: str | None, views_flags: tuple[str, ...]
) -> None:
    flags = (*event_store_flags(event_store_url), *views_flags)
    server = ServerProcess(data_dir, tmp_path / "first.log", *flags)
    # Recent enough that no SLA timer of the high-priority case fires during the test.
    client = Client(server.access, prefix="story", history=timedelta(minutes=20))
    try:
        customer_id, case_id, retried = _tell_story(client)
        expected = _expected_story()
        entries = poll(lambda: _complete(client, customer_id, len(expected)))
        assert [(e.event_type, e.channel) for e in entries] == expected
        positions = [e.global_position for e in entries]
        assert positions == sorted(positions)
        summaries = [e.summary for e in entries]
        assert summaries[2].startswith("Inbound phone contact handled by agent agent-1: answered")
        assert summaries[3] == "Case transferred from support to billing"
        assert summaries[4] == "Case transferred from billing to technical"
        assert summaries[5].startswith("Inbound chat contact handled by agent agent-7")
        assert "CSAT 2/5" in summaries[6]
        assert "Hanako" not in " ".join(summaries), "personal data leaked into summaries"
        assert all(e.case_id == case_id for e in entries[1:])
        view = client.timeline.GetCaseView(timeline_service_pb2.GetCaseViewRequest(case_id=case_id))
        assert (view.transfer_count, view.reopen_count, view.contact_count) == (2, 1, 2)
        assert view.status == case_events_pb2.CASE_STATUS_OPEN
        assert view.department == "technical"
        supervision = poll(lambda: _supervision_settled(client, customer_id))
        assert supervision[0].startswith("SLA policy default-1 applied: first response due")
        assert "SLA first response met" in supervision
        assert "SLA resolution met" in supervision
        assert "Escalation level 0 -> 1 (+bounced)" in supervision
        assert "Escalation level 1 -> 2 (+negative feedback)" in supervision
        assert "Escalation level 2 -> 2 (+negative sentiment)" in supervision
        assert (
            "Escalation level 2 -> 0 (-bounced, -negative feedback, -negative sentiment)"
            in supervision
        )
        assert supervision[-1].startswith("SLA policy default-1 applied: resolution due")
        everything = client.whole_timeline(customer_id)
        assert len({e.event_id for e in everything}) == len(everything)
        before = [(e.event_id, e.global_position, e.summary) for e in everything]
        story_end = max(e.occurred_at.ToDatetime(tzinfo=UTC) for e in everything)
    finally:
        client.close()
        server.kill()

    server = ServerProcess(data_dir, tmp_path / "second.log", *flags)
    client = Client(server.access, prefix="after-restart")
    client.clock = story_end  # the timeline is in the order things happened: the note comes last
    try:
        _complete_or_fail(client, customer_id, len(expected))
        after = [
            (e.event_id, e.global_position, e.summary) for e in client.whole_timeline(customer_id)
        ]
        assert after == before
        repeat = client.cases.ResolveCase(retried)
        assert repeat.duplicate_request
        client.cases.AddNote(
            case_service_pb2.AddNoteRequest(
                context=client.context(), case_id=case_id, text="Customer called back, calmer now"
            )
        )
        grown = poll(lambda: _complete(client, customer_id, len(expected) + 1))
        assert grown[-1].event_type == "crm.case.CaseNoteAdded.v1"
        everything = client.whole_timeline(customer_id)
        assert [(e.event_id, e.global_position, e.summary) for e in everything[:-1]] == before
        assert server.terminate() == 0
        assert '"message": "stopped"' in server.log_path.read_text()
        assert (data_dir / "views.db").exists() == (not views_flags)
    finally:
        client.close()
        if server.process.poll() is None:
            server.kill()


def test_server_answers_health_checks_and_lists_services_by_reflection(
    data_dir: Path, tmp_path: Path
) -> None:
    server = ServerProcess(data_dir, tmp_path / "server.log")
    channel = server.access.channel()
    try:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", *SERVICES):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        (reply,) = list(reflection.ServerReflectionInfo(iter([request])))
        names = {s.name for s in reply.list_services_response.service}
        assert names >= SERVICES
        assert server.terminate() == 0
    finally:
        channel.close()
        if server.process.poll() is None:
            server.kill()


def _tell_story(client: Client) -> tuple[str, str, case_service_pb2.ResolveCaseRequest]:
    customer = client.customers.RegisterCustomer(
        customer_service_pb2.RegisterCustomerRequest(
            context=client.context(),
            name="Hanako Yamada",
            language="ja",
            segment=customer_events_pb2.SEGMENT_B2C,
            contact_points=[
                customer_events_pb2.ContactPoint(
                    channel=common_pb2.CHANNEL_PHONE, address="+81-3-0000-0000"
                )
            ],
        )
    )
    customer_id = customer.aggregate_id
    opened = client.cases.OpenCase(
        case_service_pb2.OpenCaseRequest(
            context=client.context(),
            customer_id=customer_id,
            channel=common_pb2.CHANNEL_PHONE,
            category=case_events_pb2.CATEGORY_BILLING_PAYMENT,
            priority=common_pb2.PRIORITY_HIGH,
            subject="Charged twice for one order",
            description="Hanako sees two charges on her card.",
        )
    )
    case_id = opened.aggregate_id
    agent = common_pb2.Actor(kind=common_pb2.ACTOR_KIND_AGENT, id="agent-1")
    client.cases.RecordContact(
        case_service_pb2.RecordContactRequest(
            context=client.context(),
            case_id=case_id,
            channel=common_pb2.CHANNEL_PHONE,
            direction=common_pb2.DIRECTION_INBOUND,
            handled_by=agent,
            outcome=case_events_pb2.CONTACT_OUTCOME_ANSWERED,
            started_at=stamp(client.clock),
            talk_seconds=320,
            hold_seconds=40,
            after_work_seconds=60,
        )
    )
    for department, reason in (("billing", "double charge"), ("technical", "payment gateway bug")):
        client.cases.TransferCase(
            case_service_pb2.TransferCaseRequest(
                context=client.context(), case_id=case_id, to_department=department, reason=reason
            )
        )
    client.cases.RecordContact(
        case_service_pb2.RecordContactRequest(
            context=client.context(),
            case_id=case_id,
            channel=common_pb2.CHANNEL_CHAT,
            direction=common_pb2.DIRECTION_INBOUND,
            handled_by=common_pb2.Actor(kind=common_pb2.ACTOR_KIND_AGENT, id="agent-7"),
            outcome=case_events_pb2.CONTACT_OUTCOME_ANSWERED,
            started_at=stamp(client.clock),
            talk_seconds=600,
        )
    )
    customer_ctx = client.context(actor_id=customer_id, kind=common_pb2.ACTOR_KIND_CUSTOMER)
    client.feedback.SubmitSurvey(
        feedback_service_pb2.SubmitSurveyRequest(
            context=customer_ctx,
            customer_id=customer_id,
            case_id=case_id,
            channel=common_pb2.CHANNEL_EMAIL,
            csat=2,
        )
    )
    client.feedback.RecordVoiceOfCustomer(
        feedback_service_pb2.RecordVoiceOfCustomerRequest(
            context=client.context(actor_id=customer_id, kind=common_pb2.ACTOR_KIND_CUSTOMER),
            customer_id=customer_id,
            case_id=case_id,
            channel=common_pb2.CHANNEL_SOCIAL,
            text="I was passed around three times and still have no refund.",
        )
    )
    # The deadline process escalates the case for the poor CSAT and the angry text; wait for both
    # before resolving, which clears them.
    expected_reasons = {
        case_events_pb2.ESCALATION_REASON_BOUNCED,
        case_events_pb2.ESCALATION_REASON_NEGATIVE_FEEDBACK,
        case_events_pb2.ESCALATION_REASON_NEGATIVE_SENTIMENT,
    }
    poll(lambda: set(_case(client, case_id).escalation) == expected_reasons)
    resolve = case_service_pb2.ResolveCaseRequest(
        context=client.context(), case_id=case_id, resolution_code="refund-issued"
    )
    client.cases.ResolveCase(resolve)
    client.cases.ReopenCase(
        case_service_pb2.ReopenCaseRequest(
            context=client.context(), case_id=case_id, reason="refund did not arrive"
        )
    )
    return customer_id, case_id, resolve


def _expected_story() -> list[tuple[str, int]]:
    unset = common_pb2.CHANNEL_UNSPECIFIED
    return [
        ("crm.customer.CustomerRegistered.v1", unset),
        ("crm.case.CaseOpened.v1", common_pb2.CHANNEL_PHONE),
        ("crm.case.ContactRecorded.v1", common_pb2.CHANNEL_PHONE),
        ("crm.case.CaseTransferred.v1", unset),
        ("crm.case.CaseTransferred.v1", unset),
        ("crm.case.ContactRecorded.v1", common_pb2.CHANNEL_CHAT),
        ("crm.feedback.SurveySubmitted.v1", common_pb2.CHANNEL_EMAIL),
        ("crm.feedback.VoiceOfCustomerRecorded.v1", common_pb2.CHANNEL_SOCIAL),
        ("crm.case.CaseResolved.v1", unset),
        ("crm.case.CaseReopened.v1", unset),
    ]


# What the story itself records; SLA facts and escalations come from the deadline process too,
# at moments of its own, and are checked separately.
STORY_KINDS = (
    timeline_service_pb2.ENTRY_KIND_CUSTOMER,
    timeline_service_pb2.ENTRY_KIND_CASE,
    timeline_service_pb2.ENTRY_KIND_CONTACT,
    timeline_service_pb2.ENTRY_KIND_FEEDBACK,
)


def _complete(
    client: Client, customer_id: str, count: int
) -> list[timeline_service_pb2.TimelineEntry] | None:
    entries = client.whole_timeline(customer_id, STORY_KINDS)
    assert len(entries) <= count, f"more entries than recorded: {len(entries)} > {count}"
    return entries if len(entries) == count else None


def _case(client: Client, case_id: str) -> case_service_pb2.Case:
    return client.cases.GetCase(case_service_pb2.GetCaseRequest(case_id=case_id))


def _supervision_settled(client: Client, customer_id: str) -> list[str] | None:
    """SLA and escalation summaries, once the SLA applied on reopening is there."""
    kinds = (timeline_service_pb2.ENTRY_KIND_SLA, timeline_service_pb2.ENTRY_KIND_ESCALATION)
    summaries = [e.summary for e in client.whole_timeline(customer_id, kinds)]
    reapplied = summaries and summaries[-1].startswith("SLA policy default-1 applied: resolution")
    return summaries if reapplied else None


def _complete_or_fail(
    client: Client, customer_id: str, count: int
) -> list[timeline_service_pb2.TimelineEntry]:
    # After a restart the read store is already complete: a short deadline proves nothing was lost.
    return poll(lambda: _complete(client, customer_id, count), timeout=5)
