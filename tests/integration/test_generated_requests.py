"""Every decodable request gets a precise answer: requests generated from the protobuf descriptors.

Hypothesis builds requests for every RPC of the five services by walking each request message's
`DESCRIPTOR.fields` (boundary numbers, huge and negative Timestamps and Durations, nanos out of
range, unknown enum numbers, oversized and odd strings) and sends them to an in-process server.
No answer may be UNKNOWN or INTERNAL, the server must keep serving, and a request id whose call
was refused must have recorded no event. Derandomized with a modest number of examples per RPC;
`CRM_FUZZ_EXAMPLES=2000` runs longer.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.server_thread import ServerThread
from crm.settings import Settings
from crm.v1 import (
    audit_service_pb2,
    case_events_pb2,
    case_service_pb2,
    common_pb2,
    customer_events_pb2,
    customer_service_pb2,
    feedback_service_pb2,
    timeline_service_pb2,
)
from services.bootstrap import System, build_system
from tests.grpc_client import Client

LONG_RUN = os.environ.get("CRM_FUZZ_EXAMPLES")
EXAMPLES = int(LONG_RUN or 50)
"""Per RPC; the default keeps the file under ~30 s. A given number also randomizes the run."""
WATCH_SECONDS = 0.3
CALL_SECONDS = 20.0
FAILING = (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)

F = FieldDescriptor
INT32 = (0, 1, -1, 2**31 - 1, -(2**31))
INT64 = (*INT32, 2**63 - 1, -(2**63), 2**53, 10**12)
UINT32 = (0, 1, 2**32 - 1)
UINT64 = (*UINT32, 2**64 - 1, 2**63)
SECONDS = (0, -1, 1, 2**63 - 1, -(2**63), 253_402_300_800, -62_135_596_801, 10**11, -(10**11))
NANOS = (0, 1, 999_999_999, 1_000_000_000, -1, 2**31 - 1, -(2**31))
ODD_STRINGS = (
    "",
    " ",
    "a b",
    "x" * 20_000,
    "é",
    "顧客",
    "\x00",
    "\n",
    "a\n",
    "\x7f",
    "💥",
    "-",
    ".",
    "a" * 129,
    "9" * 40,
)
_request_ids = itertools.count(1)


def _services() -> list[Any]:
    return [
        customer_service_pb2.DESCRIPTOR.services_by_name["CustomerService"],
        case_service_pb2.DESCRIPTOR.services_by_name["CaseService"],
        feedback_service_pb2.DESCRIPTOR.services_by_name["FeedbackService"],
        timeline_service_pb2.DESCRIPTOR.services_by_name["TimelineService"],
        audit_service_pb2.DESCRIPTOR.services_by_name["AuditService"],
    ]


METHODS: list[MethodDescriptor] = [m for s in _services() for m in s.methods]


@dataclass
class Fuzzing:
    system: System
    server: ServerThread
    channel: grpc.Channel
    known_ids: list[str]
    accepted: set[str] = field(default_factory=set)
    refused: set[str] = field(default_factory=set)


@pytest.fixture(scope="module")
def fuzzing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzing]:
    data_dir: Path = tmp_path_factory.mktemp("generated-requests")
    system = build_system(Settings.defaults(data_dir=data_dir))
    assert system.projector is not None
    system.projector.start()
    server = ServerThread(system)
    # Authenticated: every call carries a token fitting the actor its context names, so the
    # requests reach the servicers as a real caller's would (a wild actor is refused early).
    assert server.security.authenticator is not None
    client = Client(server.access, prefix="seed")
    customer = client.customers.RegisterCustomer(
        customer_service_pb2.RegisterCustomerRequest(
            context=client.context(),
            name="Aiko Tanaka",
            language="ja",
            segment=customer_events_pb2.SEGMENT_B2C,
        )
    ).aggregate_id
    case = client.cases.OpenCase(
        case_service_pb2.OpenCaseRequest(
            context=client.context(),
            customer_id=customer,
            channel=common_pb2.CHANNEL_EMAIL,
            category=case_events_pb2.CATEGORY_SHIPPING_FEES,
            subject="Parcel late",
        )
    ).aggregate_id
    known = [customer, case, "agent-1", "agent-2", "JPY", "ja", "en", "Parcel late", "2026-01-01"]
    fuzz = Fuzzing(system, server, client.channel, known)
    yield fuzz
    client.close()
    server.stop(1)
    system.close()


# Strategies derived from descriptors ---------------------------------------------------------


def _strings(known: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(known),
        st.sampled_from(ODD_STRINGS),
        st.text(max_size=30),
        st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,20}", fullmatch=True),
    )


def _integers(boundaries: tuple[int, ...], low: int, high: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(boundaries), st.integers(low, high))


def _timestamp_like(descriptor: Descriptor) -> st.SearchStrategy[dict[str, Any]]:
    now = datetime.now(UTC)
    recent = st.integers(
        int((now - timedelta(days=400)).timestamp()), int(now.timestamp()) - 60
    ).map(lambda s: {"seconds": s, "nanos": 0})
    wild = st.fixed_dictionaries(
        {
            "seconds": _integers(SECONDS, -(2**63), 2**63 - 1),
            "nanos": _integers(NANOS, -(2**31), 2**31 - 1),
        }
    )
    if descriptor.full_name == "google.protobuf.Duration":
        recent = st.integers(0, 400 * 86400).map(lambda s: {"seconds": s, "nanos": 0})
    return _mostly(recent, wild)


PLAUSIBLE_WEIGHT = 8
"""Each field is plausible this many times as often as wild, so most requests hold one or two
wild fields and the rest get past validation into the domain and the stores."""
UNSET = object()


def _mostly(
    plausible: st.SearchStrategy[Any], wild: st.SearchStrategy[Any]
) -> st.SearchStrategy[Any]:
    return st.one_of(*[plausible] * PLAUSIBLE_WEIGHT, wild)


def _plausible(fd: FieldDescriptor, known: list[str]) -> st.SearchStrategy[Any]:
    kind = fd.type
    if kind == F.TYPE_STRING:
        return st.sampled_from(known)
    if kind == F.TYPE_ENUM:
        assert fd.enum_type is not None
        return st.sampled_from([v.number for v in fd.enum_type.values if v.number])
    if kind == F.TYPE_BOOL:
        return st.booleans()
    if kind in (F.TYPE_FLOAT, F.TYPE_DOUBLE):
        return st.floats(0, 100)
    if kind == F.TYPE_BYTES:
        return st.binary(max_size=8)
    return st.integers(0, 10)


def _scalar(fd: FieldDescriptor, known: list[str]) -> st.SearchStrategy[Any]:
    return _mostly(_plausible(fd, known), _wild(fd, known))


def _wild(fd: FieldDescriptor, known: list[str]) -> st.SearchStrategy[Any]:
    kind = fd.type
    if kind in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32):
        return _integers(INT32, -(2**31), 2**31 - 1)
    if kind in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64):
        return _integers(INT64, -(2**63), 2**63 - 1)
    if kind in (F.TYPE_UINT32, F.TYPE_FIXED32):
        return _integers(UINT32, 0, 2**32 - 1)
    if kind in (F.TYPE_UINT64, F.TYPE_FIXED64):
        return _integers(UINT64, 0, 2**64 - 1)
    if kind == F.TYPE_BOOL:
        return st.booleans()
    if kind in (F.TYPE_FLOAT, F.TYPE_DOUBLE):
        return st.floats(width=32 if kind == F.TYPE_FLOAT else 64)
    if kind == F.TYPE_STRING:
        return _strings(known)
    if kind == F.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == F.TYPE_ENUM:
        assert fd.enum_type is not None
        numbers = [v.number for v in fd.enum_type.values]
        unknown = (max(numbers) + 1, 99, -1, 2**31 - 1, -(2**31))
        return st.one_of(st.sampled_from(numbers), st.sampled_from(unknown))
    raise AssertionError(f"no strategy for field {fd.full_name} of type {kind}")


def _field_value(fd: FieldDescriptor, known: list[str], depth: int) -> st.SearchStrategy[Any]:
    if fd.type == F.TYPE_MESSAGE:
        assert fd.message_type is not None
        return _message_dict(fd.message_type, known, depth + 1)
    return _scalar(fd, known)


def _context(known: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """Mostly a valid CommandContext with a fresh request id, so calls get past it."""
    now = datetime.now(UTC)
    valid = st.builds(
        lambda offset, kind, actor_id: {
            "request_id": f"fuzz-{next(_request_ids)}",
            "occurred_at": {"seconds": int((now - timedelta(hours=2)).timestamp()) + offset},
            "actor": {"kind": kind, "id": actor_id},
        },
        st.integers(0, 3600),
        st.sampled_from([v.number for v in common_pb2.ActorKind.DESCRIPTOR.values if v.number]),
        st.sampled_from(["agent-1", "supervisor-1", "bot-1"]),
    )
    return st.one_of(
        valid, valid, valid, _message_dict(common_pb2.CommandContext.DESCRIPTOR, known, 9)
    )


def _message_dict(
    descriptor: Descriptor, known: list[str], depth: int
) -> st.SearchStrategy[dict[str, Any]]:
    """Values for every field of a message (each maybe left unset), recursively."""
    if descriptor.full_name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        return _timestamp_like(descriptor)
    if descriptor.full_name == "google.protobuf.Any" or depth > 4:
        return st.just({})
    if descriptor.full_name == "crm.v1.CommandContext" and depth < 9:
        return _context(known)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for fd in descriptor.fields:
        value = _field_value(fd, known, depth)
        if fd.is_repeated:
            fields[fd.name] = st.lists(value, max_size=3)
        else:
            fields[fd.name] = st.one_of(value, value, value, st.just(UNSET))
    return st.fixed_dictionaries(fields).map(
        lambda values: {name: v for name, v in values.items() if v is not UNSET}
    )


def _fill(message: Message, values: dict[str, Any]) -> Message:
    for name, value in values.items():
        fd = message.DESCRIPTOR.fields_by_name[name]
        if fd.is_repeated:
            target = getattr(message, name)
            for item in value:
                if fd.type == F.TYPE_MESSAGE:
                    _fill(target.add(), item)
                else:
                    target.append(item)
        elif fd.type == F.TYPE_MESSAGE:
            _fill(getattr(message, name), value)
            getattr(message, name).SetInParent()
        else:
            setattr(message, name, value)
    return message


def _request_id(request: Message) -> str | None:
    if "context" in request.DESCRIPTOR.fields_by_name and request.HasField("context"):
        context: common_pb2.CommandContext = getattr(request, "context")  # noqa: B009
        return context.request_id
    return None


def _events_with_request_id(system: System, request_id: str) -> int:
    path = Path(system.store._path)  # type: ignore[attr-defined]
    with sqlite3.connect(path) as conn:
        row = conn.execute(
            "SELECT COUNT(*) FROM events WHERE json_extract(metadata, '$.request_id') = ?",
            (request_id,),
        ).fetchone()
    return int(row[0])


def _call(fuzz: Fuzzing, method: MethodDescriptor, request: Message) -> grpc.StatusCode:
    path = f"/{method.containing_service.full_name}/{method.name}"
    reply_class = message_factory.GetMessageClass(method.output_type)
    if method.server_streaming:
        stream = fuzz.channel.unary_stream(
            path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=reply_class.FromString,
        )
        try:
            for _ in stream(request, timeout=WATCH_SECONDS):
                pass
        except grpc.RpcError as error:
            code: grpc.StatusCode = error.code()
            return code
        return grpc.StatusCode.OK
    unary = fuzz.channel.unary_unary(
        path,
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=reply_class.FromString,
    )
    try:
        unary(request, timeout=CALL_SECONDS)
    except grpc.RpcError as error:
        code = error.code()
        details = error.details()
        assert code not in FAILING, f"{method.name}: {code.name} {details} for {request}"[:3000]
        return code
    return grpc.StatusCode.OK


@pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS])
def test_every_generated_request_gets_a_precise_answer(
    fuzzing: Fuzzing, method: MethodDescriptor
) -> None:
    request_class = message_factory.GetMessageClass(method.input_type)

    @settings(
        max_examples=EXAMPLES,
        derandomize=not LONG_RUN,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(values=_message_dict(method.input_type, fuzzing.known_ids, 0))
    def check(values: dict[str, Any]) -> None:
        request = _fill(request_class(), values)
        code = _call(fuzzing, method, request)
        assert code not in FAILING, f"{method.name}: {code.name} for {request}"[:3000]
        request_id = _request_id(request)
        if request_id:
            (fuzzing.accepted if code is grpc.StatusCode.OK else fuzzing.refused).add(request_id)

    check()
    for request_id in fuzzing.refused - fuzzing.accepted:
        assert _events_with_request_id(fuzzing.system, request_id) == 0, (
            f"{method.name}: request {request_id!r} was refused but recorded events"
        )
    fuzzing.refused.clear()
    health = health_pb2_grpc.HealthStub(fuzzing.channel)
    status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=CALL_SECONDS)
    assert status.status == health_pb2.HealthCheckResponse.SERVING
