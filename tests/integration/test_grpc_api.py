"""Every RPC validates its request: the right status, a message naming the field, nothing appended.

Runs the real servicers, applications and SQLite stores in this process on an ephemeral port.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message

from bench.server_thread import ServerThread
from crm.settings import Settings
from crm.v1 import (
    case_events_pb2,
    case_service_pb2,
    common_pb2,
    customer_events_pb2,
    customer_service_pb2,
    feedback_service_pb2,
    timeline_service_pb2,
)
from services.bootstrap import System, build_system
from tests.grpc_client import Client, poll, stamp

C = grpc.StatusCode


@dataclass
class Running:
    system: System
    client: Client
    customer_id: str
    other_customer_id: str
    case_id: str
    closed_case_id: str


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    data_dir: Path = tmp_path_factory.mktemp("grpc-api")
    system = build_system(Settings.defaults(data_dir=data_dir))
    assert system.projector is not None
    system.projector.start()
    server = ServerThread(system)
    client = Client(server.access, prefix="api")
    customer_id = _register(client, "Aiko Tanaka")
    other_customer_id = _register(client, "Ben Ito")
    case_id = _open_case(client, customer_id)
    closed_case_id = _open_case(client, customer_id)
    client.cases.CloseCase(
        case_service_pb2.CloseCaseRequest(
            context=client.context(), case_id=closed_case_id, reason="customer withdrew"
        )
    )
    yield Running(system, client, customer_id, other_customer_id, case_id, closed_case_id)
    client.close()
    server.stop(1)
    system.close()


def _register(client: Client, name: str) -> str:
    reply = client.customers.RegisterCustomer(
        customer_service_pb2.RegisterCustomerRequest(
            context=client.context(),
            name=name,
            language="ja",
            segment=customer_events_pb2.SEGMENT_B2C,
        )
    )
    return reply.aggregate_id


def _open_case(client: Client, customer_id: str) -> str:
    reply = client.cases.OpenCase(
        case_service_pb2.OpenCaseRequest(
            context=client.context(),
            customer_id=customer_id,
            channel=common_pb2.CHANNEL_EMAIL,
            category=case_events_pb2.CATEGORY_SHIPPING_FEES,
            subject="Parcel late",
        )
    )
    return reply.aggregate_id


Call = Callable[[Running], Message]


def _ctx(r: Running) -> common_pb2.CommandContext:
    return r.client.context()


def _register_req(r: Running, **fields: object) -> Message:
    base: dict[str, object] = {
        "context": _ctx(r),
        "name": "Chie Mori",
        "language": "ja",
        "segment": customer_events_pb2.SEGMENT_B2C,
    }
    base.update(fields)
    return r.client.customers.RegisterCustomer(
        customer_service_pb2.RegisterCustomerRequest(**base)  # type: ignore[arg-type]
    )


def _contact_req(r: Running, **fields: object) -> Message:
    base: dict[str, object] = {
        "context": _ctx(r),
        "case_id": r.case_id,
        "channel": common_pb2.CHANNEL_PHONE,
        "direction": common_pb2.DIRECTION_INBOUND,
        "handled_by": common_pb2.Actor(kind=common_pb2.ACTOR_KIND_AGENT, id="agent-2"),
        "outcome": case_events_pb2.CONTACT_OUTCOME_ANSWERED,
        "started_at": stamp(datetime.now(UTC)),
    }
    base.update(fields)
    return r.client.cases.RecordContact(
        case_service_pb2.RecordContactRequest(**base)  # type: ignore[arg-type]
    )


def _survey_req(r: Running, **fields: object) -> Message:
    base: dict[str, object] = {
        "context": _ctx(r),
        "customer_id": r.customer_id,
        "channel": common_pb2.CHANNEL_EMAIL,
        "csat": 4,
    }
    base.update(fields)
    return r.client.feedback.SubmitSurvey(
        feedback_service_pb2.SubmitSurveyRequest(**base)  # type: ignore[arg-type]
    )


def _future(r: Running) -> common_pb2.CommandContext:
    context = _ctx(r)
    context.occurred_at.CopyFrom(stamp(datetime.now(UTC) + timedelta(days=1)))
    return context


REFUSALS: list[tuple[str, Call, grpc.StatusCode, str]] = [
    # the command context
    ("no context", lambda r: _register_req(r, context=None), C.INVALID_ARGUMENT, "context"),
    (
        "no request id",
        lambda r: _register_req(
            r, context=common_pb2.CommandContext(occurred_at=stamp(datetime.now(UTC)))
        ),
        C.INVALID_ARGUMENT,
        "context.request_id",
    ),
    (
        "no time",
        lambda r: _register_req(
            r,
            context=common_pb2.CommandContext(
                request_id="x-1", actor=common_pb2.Actor(kind=common_pb2.ACTOR_KIND_AGENT, id="a")
            ),
        ),
        C.INVALID_ARGUMENT,
        "context.occurred_at",
    ),
    (
        "actor without a kind",  # leaving the actor out is fine: the credential names it
        lambda r: _register_req(
            r,
            context=common_pb2.CommandContext(
                request_id="x-2",
                occurred_at=stamp(datetime.now(UTC)),
                actor=common_pb2.Actor(id="agent-1"),
            ),
        ),
        C.INVALID_ARGUMENT,
        "context.actor.kind",
    ),
    (
        "future time",
        lambda r: _register_req(r, context=_future(r)),
        C.INVALID_ARGUMENT,
        "context.occurred_at",
    ),
    # customers
    ("no name", lambda r: _register_req(r, name=""), C.INVALID_ARGUMENT, "name"),
    ("long name", lambda r: _register_req(r, name="x" * 201), C.INVALID_ARGUMENT, "name"),
    ("no segment", lambda r: _register_req(r, segment=0), C.INVALID_ARGUMENT, "segment"),
    (
        "b2b without company",
        lambda r: _register_req(r, segment=customer_events_pb2.SEGMENT_B2B),
        C.INVALID_ARGUMENT,
        "company",
    ),
    (
        "bad language",
        lambda r: _register_req(r, language="english!"),
        C.INVALID_ARGUMENT,
        "language",
    ),
    (
        "contact point without channel",
        lambda r: _register_req(
            r, contact_points=[customer_events_pb2.ContactPoint(address="c@example.com")]
        ),
        C.INVALID_ARGUMENT,
        "contact_points[0].channel",
    ),
    (
        "bad customer id",
        lambda r: _register_req(r, customer_id="no spaces"),
        C.INVALID_ARGUMENT,
        "customer_id",
    ),
    (
        "registered twice",
        lambda r: _register_req(r, customer_id=r.customer_id),
        C.ALREADY_EXISTS,
        "registered already",
    ),
    (
        "tier of unknown customer",
        lambda r: r.client.customers.ChangeTier(
            customer_service_pb2.ChangeTierRequest(
                context=_ctx(r), customer_id="ghost", tier=customer_events_pb2.TIER_VIP
            )
        ),
        C.NOT_FOUND,
        "ghost",
    ),
    (
        "same tier",
        lambda r: r.client.customers.ChangeTier(
            customer_service_pb2.ChangeTierRequest(
                context=_ctx(r), customer_id=r.customer_id, tier=customer_events_pb2.TIER_STANDARD
            )
        ),
        C.FAILED_PRECONDITION,
        "standard already",
    ),
    (
        "bad currency",
        lambda r: r.client.customers.RecordPurchase(
            customer_service_pb2.RecordPurchaseRequest(
                context=_ctx(r),
                customer_id=r.customer_id,
                order_id="o-1",
                product="Plan",
                amount_minor=100,
                currency="euro",
            )
        ),
        C.INVALID_ARGUMENT,
        "currency",
    ),
    (
        "merge into itself",
        lambda r: r.client.customers.MergeCustomers(
            customer_service_pb2.MergeCustomersRequest(
                context=r.client.supervisor_context(),
                duplicate_customer_id=r.customer_id,
                survivor_customer_id=r.customer_id,
            )
        ),
        C.INVALID_ARGUMENT,
        "survivor_customer_id",
    ),
    (
        "merge into unknown",
        lambda r: r.client.customers.MergeCustomers(
            customer_service_pb2.MergeCustomersRequest(
                context=r.client.supervisor_context(),
                duplicate_customer_id=r.customer_id,
                survivor_customer_id="ghost",
            )
        ),
        C.NOT_FOUND,
        "survivor_customer_id",
    ),
    (
        "undo a merge that is not there",
        lambda r: r.client.customers.UndoMerge(
            customer_service_pb2.UndoMergeRequest(
                context=r.client.supervisor_context(),
                duplicate_customer_id=r.customer_id,
                reason="mistake",
            )
        ),
        C.FAILED_PRECONDITION,
        "not merged",
    ),
    (
        "get unknown customer",
        lambda r: r.client.customers.GetCustomer(
            customer_service_pb2.GetCustomerRequest(customer_id="ghost")
        ),
        C.NOT_FOUND,
        "ghost",
    ),
    (
        "get without id",
        lambda r: r.client.customers.GetCustomer(customer_service_pb2.GetCustomerRequest()),
        C.INVALID_ARGUMENT,
        "customer_id",
    ),
    # cases
    (
        "case for unknown customer",
        lambda r: r.client.cases.OpenCase(
            case_service_pb2.OpenCaseRequest(
                context=_ctx(r),
                customer_id="ghost",
                channel=common_pb2.CHANNEL_PHONE,
                category=case_events_pb2.CATEGORY_COMPLAINT,
                subject="x",
            )
        ),
        C.NOT_FOUND,
        "customer_id",
    ),
    (
        "case without category",
        lambda r: r.client.cases.OpenCase(
            case_service_pb2.OpenCaseRequest(
                context=_ctx(r),
                customer_id=r.customer_id,
                channel=common_pb2.CHANNEL_PHONE,
                subject="x",
            )
        ),
        C.INVALID_ARGUMENT,
        "category",
    ),
    (
        "case without subject",
        lambda r: r.client.cases.OpenCase(
            case_service_pb2.OpenCaseRequest(
                context=_ctx(r),
                customer_id=r.customer_id,
                channel=common_pb2.CHANNEL_PHONE,
                category=case_events_pb2.CATEGORY_COMPLAINT,
                subject="  ",
            )
        ),
        C.INVALID_ARGUMENT,
        "subject",
    ),
    (
        "oversized description",
        lambda r: r.client.cases.OpenCase(
            case_service_pb2.OpenCaseRequest(
                context=_ctx(r),
                customer_id=r.customer_id,
                channel=common_pb2.CHANNEL_PHONE,
                category=case_events_pb2.CATEGORY_COMPLAINT,
                subject="x",
                description="y" * 10_001,
            )
        ),
        C.INVALID_ARGUMENT,
        "description",
    ),
    (
        "contact without handler",
        lambda r: _contact_req(r, handled_by=None),
        C.INVALID_ARGUMENT,
        "handled_by",
    ),
    (
        "contact without start",
        lambda r: _contact_req(r, started_at=None),
        C.INVALID_ARGUMENT,
        "started_at",
    ),
    (
        "negative talk time",
        lambda r: _contact_req(r, talk_seconds=-1),
        C.INVALID_ARGUMENT,
        "talk_seconds",
    ),
    ("contact on unknown case", lambda r: _contact_req(r, case_id="ghost"), C.NOT_FOUND, "ghost"),
    (
        "contact on closed case",
        lambda r: _contact_req(r, case_id=r.closed_case_id),
        C.FAILED_PRECONDITION,
        "closed",
    ),
    (
        "agent hands over",
        lambda r: _contact_req(r, outcome=case_events_pb2.CONTACT_OUTCOME_HANDED_TO_HUMAN),
        C.INVALID_ARGUMENT,
        "outcome",
    ),
    (
        "transfer to same department",
        lambda r: r.client.cases.TransferCase(
            case_service_pb2.TransferCaseRequest(
                context=_ctx(r), case_id=r.case_id, to_department="support", reason="why not"
            )
        ),
        C.FAILED_PRECONDITION,
        "already in department support",
    ),
    (
        "transfer without reason",
        lambda r: r.client.cases.TransferCase(
            case_service_pb2.TransferCaseRequest(
                context=_ctx(r), case_id=r.case_id, to_department="billing"
            )
        ),
        C.INVALID_ARGUMENT,
        "reason",
    ),
    (
        "priority unspecified",
        lambda r: r.client.cases.ChangePriority(
            case_service_pb2.ChangePriorityRequest(context=_ctx(r), case_id=r.case_id)
        ),
        C.INVALID_ARGUMENT,
        "priority",
    ),
    (
        "resolve without code",
        lambda r: r.client.cases.ResolveCase(
            case_service_pb2.ResolveCaseRequest(context=_ctx(r), case_id=r.case_id)
        ),
        C.INVALID_ARGUMENT,
        "resolution_code",
    ),
    (
        "reopen an open case",
        lambda r: r.client.cases.ReopenCase(
            case_service_pb2.ReopenCaseRequest(context=_ctx(r), case_id=r.case_id, reason="again")
        ),
        C.FAILED_PRECONDITION,
        "reopen",
    ),
    (
        "resume a case that is not pending",
        lambda r: r.client.cases.ResumeCase(
            case_service_pb2.ResumeCaseRequest(context=_ctx(r), case_id=r.case_id)
        ),
        C.FAILED_PRECONDITION,
        "resume",
    ),
    (
        "close unresolved without reason",
        lambda r: r.client.cases.CloseCase(
            case_service_pb2.CloseCaseRequest(context=_ctx(r), case_id=r.case_id)
        ),
        C.FAILED_PRECONDITION,
        "needs a reason",
    ),
    (
        "oversized note",
        lambda r: r.client.cases.AddNote(
            case_service_pb2.AddNoteRequest(context=_ctx(r), case_id=r.case_id, text="n" * 10_001)
        ),
        C.INVALID_ARGUMENT,
        "text",
    ),
    (
        "get unknown case",
        lambda r: r.client.cases.GetCase(case_service_pb2.GetCaseRequest(case_id="ghost")),
        C.NOT_FOUND,
        "ghost",
    ),
    # feedback
    ("csat above 5", lambda r: _survey_req(r, csat=6), C.INVALID_ARGUMENT, "csat"),
    ("nps above 10", lambda r: _survey_req(r, csat=None, nps=11), C.INVALID_ARGUMENT, "nps"),
    ("ces below 1", lambda r: _survey_req(r, csat=None, ces=0), C.INVALID_ARGUMENT, "ces"),
    ("survey without scores", lambda r: _survey_req(r, csat=None), C.INVALID_ARGUMENT, "scores"),
    (
        "survey of unknown customer",
        lambda r: _survey_req(r, customer_id="ghost"),
        C.NOT_FOUND,
        "customer_id",
    ),
    ("survey on unknown case", lambda r: _survey_req(r, case_id="ghost"), C.NOT_FOUND, "case_id"),
    (
        "survey on another customer's case",
        lambda r: _survey_req(r, customer_id=r.other_customer_id, case_id=r.case_id),
        C.INVALID_ARGUMENT,
        "case_id",
    ),
    (
        "review rated 0",
        lambda r: r.client.feedback.SubmitReview(
            feedback_service_pb2.SubmitReviewRequest(
                context=_ctx(r), customer_id=r.customer_id, rating=0, source="shop"
            )
        ),
        C.INVALID_ARGUMENT,
        "rating",
    ),
    (
        "voice of customer without text",
        lambda r: r.client.feedback.RecordVoiceOfCustomer(
            feedback_service_pb2.RecordVoiceOfCustomerRequest(
                context=_ctx(r), customer_id=r.customer_id, channel=common_pb2.CHANNEL_CHAT
            )
        ),
        C.INVALID_ARGUMENT,
        "text",
    ),
    (
        "get unknown feedback",
        lambda r: r.client.feedback.GetFeedback(
            feedback_service_pb2.GetFeedbackRequest(feedback_id="ghost")
        ),
        C.NOT_FOUND,
        "ghost",
    ),
    # timeline
    (
        "bad page token",
        lambda r: r.client.timeline.GetTimeline(
            timeline_service_pb2.GetTimelineRequest(customer_id=r.customer_id, page_token="nope")
        ),
        C.INVALID_ARGUMENT,
        "page_token",
    ),
    (
        "v1 page token (the timeline is no longer in global order)",
        lambda r: r.client.timeline.GetTimeline(
            timeline_service_pb2.GetTimelineRequest(
                customer_id=r.customer_id, page_token="djE6NQ=="
            )
        ),
        C.INVALID_ARGUMENT,
        "page_token",
    ),
    (
        "page too large",
        lambda r: r.client.timeline.GetTimeline(
            timeline_service_pb2.GetTimelineRequest(customer_id=r.customer_id, page_size=501)
        ),
        C.INVALID_ARGUMENT,
        "page_size",
    ),
    (
        "timeline without customer",
        lambda r: r.client.timeline.GetTimeline(timeline_service_pb2.GetTimelineRequest()),
        C.INVALID_ARGUMENT,
        "customer_id",
    ),
    (
        "escalations with a negative min_age",
        lambda r: r.client.timeline.ListEscalatedCases(
            timeline_service_pb2.ListEscalatedCasesRequest(min_age=Duration(seconds=-1))
        ),
        C.INVALID_ARGUMENT,
        "min_age",
    ),
    (
        "escalations with a min_age of 2**62 seconds",
        lambda r: r.client.timeline.ListEscalatedCases(
            timeline_service_pb2.ListEscalatedCasesRequest(min_age=Duration(seconds=2**62))
        ),
        C.INVALID_ARGUMENT,
        "min_age",
    ),
    (
        "watch after a position SQLite cannot hold",
        lambda r: next(
            iter(
                r.client.timeline.WatchTimeline(
                    timeline_service_pb2.WatchTimelineRequest(
                        customer_id=r.customer_id, after_position=2**63
                    ),
                    timeout=5,
                )
            )
        ),
        C.INVALID_ARGUMENT,
        "after_position",
    ),
    (
        "view of unknown case",
        lambda r: r.client.timeline.GetCaseView(
            timeline_service_pb2.GetCaseViewRequest(case_id="ghost")
        ),
        C.NOT_FOUND,
        "ghost",
    ),
]


@pytest.mark.parametrize(
    ("call", "code", "mentions"),
    [pytest.param(call, code, mentions, id=name) for name, call, code, mentions in REFUSALS],
)
def test_refused_request_gets_precise_status_and_appends_nothing(
    running: Running, call: Call, code: grpc.StatusCode, mentions: str
) -> None:
    before = running.system.store.last_position()
    with pytest.raises(grpc.RpcError) as refused:
        call(running)
    assert refused.value.code() == code, refused.value.details()
    assert mentions in (refused.value.details() or "")
    assert running.system.store.last_position() == before


def test_retried_request_returns_original_result_and_appends_nothing(running: Running) -> None:
    client = running.client
    request = case_service_pb2.AddNoteRequest(
        context=client.context(), case_id=running.case_id, text="Called the carrier"
    )
    first = client.cases.AddNote(request)
    position = running.system.store.last_position()
    again = client.cases.AddNote(request)
    assert again.duplicate_request and not first.duplicate_request
    assert (again.revision, again.global_position, list(again.event_ids)) == (
        first.revision,
        first.global_position,
        list(first.event_ids),
    )
    assert running.system.store.last_position() == position


def test_request_id_reused_for_another_command_is_refused(running: Running) -> None:
    client = running.client
    context = client.context()
    client.cases.AddNote(
        case_service_pb2.AddNoteRequest(context=context, case_id=running.case_id, text="first")
    )
    position = running.system.store.last_position()
    with pytest.raises(grpc.RpcError) as refused:
        client.cases.AddNote(
            case_service_pb2.AddNoteRequest(context=context, case_id=running.case_id, text="other")
        )
    assert refused.value.code() == C.INVALID_ARGUMENT
    assert "context.request_id" in (refused.value.details() or "")
    assert running.system.store.last_position() == position


def test_request_id_that_opened_a_case_is_refused_for_a_note_on_another(running: Running) -> None:
    client = running.client
    context = client.context()
    client.cases.OpenCase(
        case_service_pb2.OpenCaseRequest(
            context=context,
            customer_id=running.customer_id,
            channel=common_pb2.CHANNEL_CHAT,
            category=case_events_pb2.CATEGORY_SHIPPING_FEES,
            subject="Parcel lost",
        )
    )
    position = running.system.store.last_position()
    with pytest.raises(grpc.RpcError) as refused:
        client.cases.AddNote(
            case_service_pb2.AddNoteRequest(context=context, case_id=running.case_id, text="x")
        )
    assert refused.value.code() == C.INVALID_ARGUMENT
    assert "context.request_id" in (refused.value.details() or "")
    assert "different command" in (refused.value.details() or "")
    assert running.system.store.last_position() == position


def test_concurrent_commands_on_one_case_all_land_through_retries(running: Running) -> None:
    client = running.client
    case_id = _open_case(client, running.customer_id)
    contexts = [client.context() for _ in range(12)]
    failures: list[BaseException] = []

    def add_note(context: common_pb2.CommandContext) -> None:
        try:
            client.cases.AddNote(
                case_service_pb2.AddNoteRequest(context=context, case_id=case_id, text="busy")
            )
        except grpc.RpcError as error:  # pragma: no cover - reported below
            failures.append(error)

    threads = [threading.Thread(target=add_note, args=(c,)) for c in contexts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures
    case = client.cases.GetCase(case_service_pb2.GetCaseRequest(case_id=case_id))
    assert case.note_count == len(contexts)
    assert case.revision == len(contexts)


def test_watch_streams_new_entries_as_they_are_projected(running: Running) -> None:
    client = running.client
    customer_id = _register(client, "Daichi Sato")
    stream = client.timeline.WatchTimeline(
        timeline_service_pb2.WatchTimelineRequest(customer_id=customer_id)
    )
    received: list[str] = []

    def consume() -> None:
        for entry in stream:
            received.append(entry.event_type)
            if len(received) == 2:
                return

    reader = threading.Thread(target=consume)
    reader.start()
    poll(lambda: received == ["crm.customer.CustomerRegistered.v1"])
    _open_case(client, customer_id)
    reader.join(timeout=10)
    stream.cancel()  # type: ignore[no-untyped-call]  # grpc-stubs leave it untyped
    assert received == ["crm.customer.CustomerRegistered.v1", "crm.case.CaseOpened.v1"]


def test_timeline_filters_and_order_reach_the_read_store(running: Running) -> None:
    client = running.client
    customer_id = _register(client, "Eri Abe")
    case_id = _open_case(client, customer_id)  # opened on email
    client.cases.AddNote(
        case_service_pb2.AddNoteRequest(context=client.context(), case_id=case_id, text="hi")
    )
    poll(lambda: len(client.whole_timeline(customer_id)) == 3)

    def types(**fields: Any) -> list[str]:
        request = timeline_service_pb2.GetTimelineRequest(customer_id=customer_id, **fields)
        return [e.event_type for e in client.timeline.GetTimeline(request).entries]

    assert types() == [
        "crm.case.CaseNoteAdded.v1",
        "crm.case.CaseOpened.v1",
        "crm.customer.CustomerRegistered.v1",
    ]
    assert types(order=timeline_service_pb2.ORDER_OLDEST_FIRST)[0] == (
        "crm.customer.CustomerRegistered.v1"
    )
    assert types(kinds=[timeline_service_pb2.ENTRY_KIND_CUSTOMER]) == [
        "crm.customer.CustomerRegistered.v1"
    ]
    assert types(channels=[common_pb2.CHANNEL_EMAIL]) == ["crm.case.CaseOpened.v1"]
    assert types(case_id=case_id, page_size=1) == ["crm.case.CaseNoteAdded.v1"]
