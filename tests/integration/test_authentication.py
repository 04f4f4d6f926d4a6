"""Credentials through gRPC: who gets in, what they are recorded as, and what they may not take."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from bench.credentials import suite_security
from bench.server_thread import ServerThread
from crm.envelope import RecordedEvent
from crm.identity import Role
from crm.settings import Settings
from crm.tokens import issue, key_set_from_jwks, new_secret_jwks
from crm.v1 import (
    case_events_pb2,
    case_service_pb2,
    case_service_pb2_grpc,
    common_pb2,
    customer_events_pb2,
    customer_service_pb2,
    customer_service_pb2_grpc,
    timeline_service_pb2,
    timeline_service_pb2_grpc,
)
from crm.vocabulary import Actor, ActorKind
from services.bootstrap import System, build_system
from services.caller_limits import Limits
from tests.grpc_client import poll, stamp

C = grpc.StatusCode
HOLD = (("hold", "1"),)
PROBE_SECONDS = 2.0
"""How long a probing call may wait; a refusal comes far sooner, even on a busy machine."""
POLL_SECONDS = 60.0
NAME = "Aiko Tanaka"
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class Holding(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Keeps GetCustomer calls marked `hold` running until released, to fill a caller's quota."""

    def __init__(self) -> None:
        self.released = threading.Event()
        self.held = 0  # calls waiting now (changed on the server's loop only)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(details)
        if ("hold", "1") not in (details.invocation_metadata or ()):
            return handler
        inner = handler.unary_unary
        assert inner is not None
        released = self.released

        async def held(request: Any, context: Any) -> Any:
            self.held += 1
            try:
                while not released.is_set():
                    await asyncio.sleep(0.01)
            finally:
                self.held -= 1
            return await inner(request, context)

        return grpc.unary_unary_rpc_method_handler(
            held, handler.request_deserializer, handler.response_serializer
        )


@dataclass
class Secured:
    system: System
    server: ServerThread
    holding: Holding
    customer_id: str
    case_id: str

    def channel(self, role: Role, subject: str, acting_for: str = "") -> grpc.Channel:
        token = self.server.access.token(role, subject, acting_for=acting_for)
        return self.server.access.channel(fixed_token=token)

    def recorded(self, request_id: str) -> list[RecordedEvent]:
        return [
            e for e in self.system.store.read_all(0, 100_000) if e.metadata.request_id == request_id
        ]


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    system = build_system(Settings.defaults(data_dir=tmp_path_factory.mktemp("auth")))
    assert system.projector is not None
    system.projector.start()  # watches begin with the customer's history
    holding = Holding()
    server = ServerThread(
        system, security=suite_security(limits=Limits(calls=2, watches=2)), interceptors=[holding]
    )
    service = server.access.channel(fixed_token=server.access.token(Role.SERVICE, "shop"))
    customer_id = (
        customer_service_pb2_grpc.CustomerServiceStub(service)
        .RegisterCustomer(
            customer_service_pb2.RegisterCustomerRequest(
                context=_context("seed-customer"),
                name=NAME,
                language="ja",
                segment=customer_events_pb2.SEGMENT_B2C,
            )
        )
        .aggregate_id
    )
    case_id = (
        case_service_pb2_grpc.CaseServiceStub(service)
        .OpenCase(
            case_service_pb2.OpenCaseRequest(
                context=_context("seed-case"),
                customer_id=customer_id,
                channel=common_pb2.CHANNEL_EMAIL,
                category=case_events_pb2.CATEGORY_SHIPPING_FEES,
                subject="Parcel late",
            )
        )
        .aggregate_id
    )
    service.close()
    yield Secured(system, server, holding, customer_id, case_id)
    holding.released.set()
    server.stop(1)
    system.close()


def _context(request_id: str, actor: common_pb2.Actor | None = None) -> common_pb2.CommandContext:
    context = common_pb2.CommandContext(
        request_id=request_id, occurred_at=stamp(datetime.now(UTC) - timedelta(minutes=1))
    )
    if actor is not None:
        context.actor.CopyFrom(actor)
    return context


def _refusal(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value


def _bad_tokens(secured: Secured) -> dict[str, str]:
    keys, rules = secured.server.access.keys, secured.server.access.rules
    assert keys is not None
    stranger = key_set_from_jwks(new_secret_jwks())
    valid = secured.server.access.token(Role.AGENT, "agent-7")
    header, body, _ = valid.split(".")
    return {
        "expired": issue(
            keys, rules, subject="agent-7", role=Role.AGENT, now=datetime.now(UTC) - timedelta(1)
        ),
        "forged": issue(stranger, rules, subject="agent-7", role=Role.ADMIN),
        "unsigned": f"{header}.{body}.",
        "none algorithm": "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + body + ".",
        "garbage": "not-a-token",
    }


def test_health_checks_need_no_credential(secured: Secured) -> None:
    channel = grpc.insecure_channel(secured.server.target)
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    channel.close()


def test_missing_expired_forged_and_unsigned_credentials_are_unauthenticated_saying_nothing(
    secured: Secured,
) -> None:
    bare = grpc.insecure_channel(secured.server.target)
    error = _get_customer(secured, bare, None)
    assert error is not None and error.code() == C.UNAUTHENTICATED
    assert "Bearer" in (error.details() or "")
    for name, token in _bad_tokens(secured).items():
        error = _get_customer(secured, bare, token)  # not even "Bearer ..."
        assert error is not None and error.code() == C.UNAUTHENTICATED, name
        error = _get_customer(secured, bare, f"Bearer {token}")
        assert error is not None and error.code() == C.UNAUTHENTICATED, name
        details = error.details() or ""
        assert token not in details and NAME not in details and secured.customer_id not in details
        assert details in (
            "the bearer token is not valid",
            "the bearer token has expired; get a new one",
        )
    bare.close()


def _get_customer(
    secured: Secured, channel: grpc.Channel, authorization: str | None
) -> grpc.RpcError | None:
    """The refusal of GetCustomer with this authorization header (or none), if refused."""
    stub = customer_service_pb2_grpc.CustomerServiceStub(channel)
    request = customer_service_pb2.GetCustomerRequest(customer_id=secured.customer_id)
    metadata = () if authorization is None else (("authorization", authorization),)
    try:
        stub.GetCustomer(request, metadata=metadata)
    except grpc.RpcError as error:
        return error
    return None


def test_reflection_needs_a_credential_unless_opened_for_development(
    secured: Secured, tmp_path: Path
) -> None:
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    bare = grpc.insecure_channel(secured.server.target)
    error = _refusal(
        lambda: list(
            reflection_pb2_grpc.ServerReflectionStub(bare).ServerReflectionInfo(iter([request]))
        )
    )
    assert error.code() == C.UNAUTHENTICATED
    bare.close()
    auditor = secured.channel(Role.AUDITOR, "aud-1")
    (reply,) = list(
        reflection_pb2_grpc.ServerReflectionStub(auditor).ServerReflectionInfo(iter([request]))
    )
    assert "crm.v1.CaseService" in {s.name for s in reply.list_services_response.service}
    auditor.close()
    # A server of its own: stopping one ends the watches of the system it serves.
    system = build_system(Settings.defaults(data_dir=tmp_path))
    opened = ServerThread(system, security=suite_security(reflection_open=True))
    try:
        anyone = grpc.insecure_channel(opened.target)
        stub = reflection_pb2_grpc.ServerReflectionStub(anyone)
        (reply,) = list(stub.ServerReflectionInfo(iter([request])))
        assert reply.list_services_response.service
        anyone.close()
    finally:
        opened.stop(0)
        system.close()


def _note(
    secured: Secured, channel: grpc.Channel, request_id: str, actor: common_pb2.Actor | None
) -> Any:
    return case_service_pb2_grpc.CaseServiceStub(channel).AddNote(
        case_service_pb2.AddNoteRequest(
            context=_context(request_id, actor), case_id=secured.case_id, text="called back"
        )
    )


def test_events_record_the_actor_the_credential_proves(secured: Secured) -> None:
    agent = secured.channel(Role.AGENT, "agent-7")
    _note(secured, agent, "note-by-token", None)
    _note(
        secured,
        agent,
        "note-named-too",
        common_pb2.Actor(kind=common_pb2.ACTOR_KIND_AGENT, id="agent-7"),
    )
    agent.close()
    for request_id in ("note-by-token", "note-named-too"):
        (event,) = secured.recorded(request_id)
        assert event.metadata.actor == Actor(ActorKind.AGENT, "agent-7")
        assert event.metadata.via is None
        assert "via_kind" not in event.metadata.to_dict()  # hashes as events always did


def test_a_request_naming_another_actor_is_refused_and_records_nothing(secured: Secured) -> None:
    agent = secured.channel(Role.AGENT, "agent-7")
    for kind, actor_id in (
        (common_pb2.ACTOR_KIND_AGENT, "agent-8"),
        (common_pb2.ACTOR_KIND_SUPERVISOR, "agent-7"),
    ):
        other = common_pb2.Actor(kind=kind, id=actor_id)
        refused = _refusal(partial(_note, secured, agent, f"impostor-{kind}", other))
        assert refused.code() == C.PERMISSION_DENIED
        assert "context.actor" in (refused.details() or "")
        assert not secured.recorded(f"impostor-{kind}")
    agent.close()


def test_a_service_or_bot_acting_for_an_agent_records_both(secured: Secured) -> None:
    ivr = secured.channel(Role.SERVICE, "ivr")
    agent_7 = common_pb2.Actor(kind=common_pb2.ACTOR_KIND_AGENT, id="agent-7")
    case_service_pb2_grpc.CaseServiceStub(ivr).RecordContact(
        case_service_pb2.RecordContactRequest(
            context=_context("contact-for-agent", agent_7),
            case_id=secured.case_id,
            channel=common_pb2.CHANNEL_PHONE,
            direction=common_pb2.DIRECTION_INBOUND,
            handled_by=agent_7,
            outcome=case_events_pb2.CONTACT_OUTCOME_ANSWERED,
            started_at=stamp(datetime.now(UTC) - timedelta(minutes=5)),
        )
    )
    ivr.close()
    (event,) = secured.recorded("contact-for-agent")
    assert event.metadata.actor == Actor(ActorKind.AGENT, "agent-7")
    assert event.metadata.via == Actor(ActorKind.SYSTEM, "ivr")
    bot = secured.channel(Role.BOT, "bot-1", acting_for="agent:agent-9")
    case_service_pb2_grpc.CaseServiceStub(bot).ResolveCase(
        case_service_pb2.ResolveCaseRequest(
            context=_context("resolved-by-bot"), case_id=secured.case_id, resolution_code="faq"
        )
    )
    bot.close()
    (event,) = secured.recorded("resolved-by-bot")
    assert (event.metadata.actor, event.metadata.via) == (
        Actor(ActorKind.AGENT, "agent-9"),
        Actor(ActorKind.BOT, "bot-1"),
    )


def test_a_request_larger_than_the_limit_is_resource_exhausted(secured: Secured) -> None:
    service = secured.channel(Role.SERVICE, "shop")
    huge = customer_service_pb2.RegisterCustomerRequest(
        context=_context("huge"), name="x" * 300_000, segment=customer_events_pb2.SEGMENT_B2C
    )
    stub = customer_service_pb2_grpc.CustomerServiceStub(service)
    error = _refusal(lambda: stub.RegisterCustomer(huge))
    assert error.code() == C.RESOURCE_EXHAUSTED
    assert not secured.recorded("huge")
    service.close()


def test_one_caller_cannot_hold_more_calls_than_its_limit_while_others_still_can(
    secured: Secured,
) -> None:
    supervisor = secured.channel(Role.SUPERVISOR, "sup-1")
    stub = customer_service_pb2_grpc.CustomerServiceStub(supervisor)
    request = customer_service_pb2.GetCustomerRequest(customer_id=secured.customer_id)
    held = [stub.GetCustomer.future(request, metadata=HOLD) for _ in range(2)]

    def both_held() -> bool:
        for call in held:
            if call.done():
                raise AssertionError(f"a held call ended: {call.code()} {call.details()}")
        return secured.holding.held == 2

    poll(both_held, timeout=POLL_SECONDS)

    def refused_for_the_third() -> bool:
        try:
            stub.GetCustomer(request, metadata=HOLD, timeout=PROBE_SECONDS)
        except grpc.RpcError as error:
            return error.code() == C.RESOURCE_EXHAUSTED
        return False

    try:
        poll(refused_for_the_third, timeout=POLL_SECONDS)
        other = secured.channel(Role.SUPERVISOR, "sup-2")
        customer_service_pb2_grpc.CustomerServiceStub(other).GetCustomer(request)
        other.close()
    finally:
        secured.holding.released.set()
    for call in held:
        assert call.result(timeout=10).customer_id == secured.customer_id
    assert stub.GetCustomer(request).customer_id == secured.customer_id
    supervisor.close()
    secured.holding.released.clear()


def test_one_caller_cannot_open_more_watches_than_its_limit(secured: Secured) -> None:
    agent = secured.channel(Role.AGENT, "watcher")
    stub = timeline_service_pb2_grpc.TimelineServiceStub(agent)
    request = timeline_service_pb2.WatchTimelineRequest(customer_id=secured.customer_id)
    watches = []
    for _ in range(2):
        watch = stub.WatchTimeline(request, timeout=POLL_SECONDS)
        next(iter(watch))  # the history's first entry: the server counts this watch by now
        watches.append(watch)

    def refused() -> str | None:
        extra = stub.WatchTimeline(request, timeout=PROBE_SECONDS)
        try:
            next(iter(extra))
        except grpc.RpcError as error:
            if error.code() == C.RESOURCE_EXHAUSTED:
                return error.details() or "?"
        finally:
            extra.cancel()  # type: ignore[no-untyped-call]
        return None

    message = refused()
    assert message is not None and "watches" in message
    other = secured.channel(Role.AGENT, "another-watcher")
    next(
        iter(
            timeline_service_pb2_grpc.TimelineServiceStub(other).WatchTimeline(request, timeout=10)
        )
    )
    other.close()
    watches.pop().cancel()  # type: ignore[no-untyped-call]
    poll(lambda: refused() is None, timeout=POLL_SECONDS)
    agent.close()


def test_tokens_never_reach_the_log(secured: Secured, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    bare = grpc.insecure_channel(secured.server.target)
    tokens = list(_bad_tokens(secured).values())
    for token in tokens:
        assert _get_customer(secured, bare, f"Bearer {token}") is not None
    auditor = secured.server.access.token(Role.AUDITOR, "aud-9")  # valid, but may not register
    tokens.append(auditor)
    stub = customer_service_pb2_grpc.CustomerServiceStub(bare)
    register = customer_service_pb2.RegisterCustomerRequest(context=_context("by-auditor"))
    metadata = (("authorization", f"Bearer {auditor}"),)
    refused = _refusal(lambda: stub.RegisterCustomer(register, metadata=metadata))
    assert refused.code() == C.PERMISSION_DENIED
    bare.close()
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "refused" in logged
    for token in tokens:
        signature = token.rsplit(".", 1)[-1] or token.split(".")[1]
        assert token not in logged and signature not in logged
