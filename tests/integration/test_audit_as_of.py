"""As-of views through gRPC on a real server: each equals what the live API answered at that
moment (a case before its transfer, a customer across a tier change, a merge and its undo, the
timeline while merged and after), bad points are refused precisely, and `crm-audit as-of` prints
a table on a terminal and JSON when piped, with an auditor's token."""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from crm.identity import Role
from crm.v1 import (
    audit_service_pb2,
    audit_service_pb2_grpc,
    case_service_pb2,
    customer_events_pb2,
    customer_service_pb2,
    timeline_service_pb2,
)
from services.audit.case_checkpoints import EVERY
from services.bootstrap import System
from services.entrypoints import audit as audit_cli
from tests.grpc_client import Client, poll, stamp
from tests.integration.test_audit_history import _cli, _open_case, _register, _serve
from tests.raw_stores import BACKENDS, Backend, backend_for

M = TypeVar("M", bound=Message)


@dataclass
class Story:
    """A case transferred, a customer whose tier changed, merged and released, and what the
    live APIs answered at each of those moments (by the global position they were taken at)."""

    system: System
    client: Client
    target: str
    auditor_channel: grpc.Channel
    agent_channel: grpc.Channel
    survivor: str
    duplicate: str
    case_id: str
    before_transfer: int = 0
    cases: dict[int, timeline_service_pb2.CaseView] = field(default_factory=dict)
    customers: dict[int, customer_service_pb2.Customer] = field(default_factory=dict)
    duplicates: dict[int, customer_service_pb2.Customer] = field(default_factory=dict)
    timelines: dict[int, list[timeline_service_pb2.TimelineEntry]] = field(default_factory=dict)


def _settled(system: System, read: Callable[[], M]) -> tuple[int, M]:
    """What `read` answers once the views hold every event, and the position that was at: read
    again if anything (an SLA timer, say) was appended meanwhile."""
    while True:
        position = system.store.last_position()
        poll(functools.partial(_projected, system, position))
        answer = read()
        if system.store.last_position() == position:
            return position, answer


def _projected(system: System, position: int) -> bool:
    views = system.view_store
    return all(views.checkpoint(name) >= position for name in ("timeline", "case_views"))


def _capture(story: Story) -> int:
    """The live case view, customers and timeline at this moment, by its position."""
    client = story.client

    def read() -> timeline_service_pb2.CaseView:
        story.customers[0] = client.customers.GetCustomer(
            customer_service_pb2.GetCustomerRequest(customer_id=story.survivor)
        )
        story.duplicates[0] = client.customers.GetCustomer(
            customer_service_pb2.GetCustomerRequest(customer_id=story.duplicate)
        )
        story.timelines[0] = client.whole_timeline(story.survivor)
        return client.timeline.GetCaseView(
            timeline_service_pb2.GetCaseViewRequest(case_id=story.case_id)
        )

    position, view = _settled(story.system, read)
    story.cases[position] = view
    story.customers[position] = story.customers.pop(0)
    story.duplicates[position] = story.duplicates.pop(0)
    story.timelines[position] = story.timelines.pop(0)
    return position


@pytest.fixture(scope="module", params=BACKENDS)
def story(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Story]:
    system, server, client = _serve(backend_for(request, tmp_path_factory.mktemp("as-of")))
    survivor = _register(client, "Aiko Tanaka")
    duplicate = _register(client, "A. Tanaka")
    case_id = _open_case(client, survivor)
    told = Story(
        system,
        client,
        server.target,
        server.access.channel(fixed_token=server.access.token(Role.AUDITOR, "auditor-1")),
        server.access.channel(fixed_token=server.access.token(Role.AGENT, "agent-1")),
        survivor,
        duplicate,
        case_id,
    )
    client.cases.AssignCase(
        case_service_pb2.AssignCaseRequest(
            context=client.context(), case_id=case_id, agent_id="agent-7", team="tier1"
        )
    )
    told.before_transfer = _capture(told)
    client.cases.TransferCase(
        case_service_pb2.TransferCaseRequest(
            context=client.supervisor_context(),
            case_id=case_id,
            to_department="technical",
            reason="modem",
        )
    )
    _capture(told)
    client.customers.ChangeTier(
        customer_service_pb2.ChangeTierRequest(
            context=client.supervisor_context(),
            customer_id=survivor,
            tier=customer_events_pb2.TIER_VIP,
            reason="loyal for years",
        )
    )
    _open_case(client, duplicate)  # on the survivor's timeline while merged
    _capture(told)
    client.customers.MergeCustomers(
        customer_service_pb2.MergeCustomersRequest(
            context=client.supervisor_context(),
            duplicate_customer_id=duplicate,
            survivor_customer_id=survivor,
            reason="same person",
        )
    )
    _capture(told)
    client.customers.UndoMerge(
        customer_service_pb2.UndoMergeRequest(
            context=client.supervisor_context(),
            duplicate_customer_id=duplicate,
            reason="two people after all",
        )
    )
    _capture(told)
    yield told
    client.close()
    server.stop(1)
    system.close()


def story_audit(story: Story) -> audit_service_pb2_grpc.AuditServiceStub:
    """AuditService as an auditor calls it."""
    return audit_service_pb2_grpc.AuditServiceStub(story.auditor_channel)


def _at(position: int) -> audit_service_pb2.AsOf:
    return audit_service_pb2.AsOf(global_position=position)


def _timeline_as_of(
    story: Story, customer_id: str, point: audit_service_pb2.AsOf, page_size: int = 3
) -> list[timeline_service_pb2.TimelineEntry]:
    """Every page of the timeline as of the point, oldest first, following the tokens."""
    query = timeline_service_pb2.GetTimelineRequest(
        customer_id=customer_id,
        order=timeline_service_pb2.ORDER_OLDEST_FIRST,
        page_size=page_size,
    )
    entries: list[timeline_service_pb2.TimelineEntry] = []
    while True:
        reply = story_audit(story).GetTimelineAsOf(
            audit_service_pb2.GetTimelineAsOfRequest(timeline=query, as_of=point)
        )
        entries.extend(reply.page.entries)
        if not reply.page.next_page_token:
            return entries
        query.page_token = reply.page.next_page_token


def test_the_case_as_of_just_before_its_transfer_is_the_live_view_then(story: Story) -> None:
    audit = story_audit(story)
    before = audit.GetCaseAsOf(
        audit_service_pb2.GetCaseAsOfRequest(
            case_id=story.case_id, as_of=_at(story.before_transfer)
        )
    )
    live = story.cases[story.before_transfer]
    assert before.case == live
    assert before.last_position == live.last_position <= story.before_transfer
    assert live.transfer_count == 0 and live.assignee == "agent-7"
    # By recorded time: the instant the last event before the transfer was recorded.
    (last,) = story.system.store.read_all(after=story.before_transfer - 1, limit=1)
    by_time = audit.GetCaseAsOf(
        audit_service_pb2.GetCaseAsOfRequest(
            case_id=story.case_id,
            as_of=audit_service_pb2.AsOf(recorded_at=stamp(last.recorded_at)),
        )
    )
    assert by_time.case == live
    for position, view in story.cases.items():
        again = audit.GetCaseAsOf(
            audit_service_pb2.GetCaseAsOfRequest(case_id=story.case_id, as_of=_at(position))
        )
        assert again.case == view, position
    assert max(v.transfer_count for v in story.cases.values()) == 1


def test_the_customer_as_of_each_moment_is_what_get_customer_said_then(story: Story) -> None:
    tiers, merged_into, duplicates = set(), set(), set()
    for position, customer in story.customers.items():
        found = story_audit(story).GetCustomerAsOf(
            audit_service_pb2.GetCustomerAsOfRequest(
                customer_id=story.survivor, as_of=_at(position)
            )
        )
        assert found.customer == customer, position
        duplicate = story_audit(story).GetCustomerAsOf(
            audit_service_pb2.GetCustomerAsOfRequest(
                customer_id=story.duplicate, as_of=_at(position)
            )
        )
        assert duplicate.customer == story.duplicates[position], position
        tiers.add(customer.tier)
        duplicates.add(tuple(customer.duplicates))
        merged_into.add(duplicate.customer.merged_into)
    # The story did move through each state: a tier change, a merge and its undo.
    assert tiers == {customer_events_pb2.TIER_STANDARD, customer_events_pb2.TIER_VIP}
    assert duplicates == {(), (story.duplicate,)}
    assert merged_into == {"", story.survivor}


def test_the_timeline_as_of_each_moment_is_what_get_timeline_said_then(story: Story) -> None:
    shown = set()
    for position, timeline in story.timelines.items():
        assert _timeline_as_of(story, story.survivor, _at(position)) == timeline, position
        shown.add(frozenset(entry.customer_id for entry in timeline))
    assert shown >= {
        frozenset({story.survivor}),
        frozenset({story.survivor, story.duplicate}),
    }, "the duplicate's entries show while merged only"
    newest_first = story_audit(story).GetTimelineAsOf(
        audit_service_pb2.GetTimelineAsOfRequest(
            timeline=timeline_service_pb2.GetTimelineRequest(
                customer_id=story.survivor, page_size=2
            ),
            as_of=_at(story.system.store.last_position()),
        )
    )
    assert (
        list(newest_first.page.entries) == list(reversed(story.timelines[max(story.timelines)]))[:2]
    )
    assert newest_first.last_position == max(
        e.global_position for e in story.timelines[max(story.timelines)]
    )


def _refused(call: Callable[[], object]) -> grpc.Call:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    assert isinstance(raised.value, grpc.Call)
    return raised.value


def test_bad_points_and_subjects_not_there_yet_are_refused_precisely(story: Story) -> None:
    audit = story_audit(story)
    head = story.system.store.last_position()

    def case(point: audit_service_pb2.AsOf, case_id: str = "") -> Callable[[], object]:
        request = audit_service_pb2.GetCaseAsOfRequest(case_id=case_id or story.case_id)
        request.as_of.CopyFrom(point)
        return lambda: audit.GetCaseAsOf(request)

    cases = [
        (case(audit_service_pb2.AsOf()), grpc.StatusCode.INVALID_ARGUMENT, "as_of"),
        (case(_at(0)), grpc.StatusCode.INVALID_ARGUMENT, "as_of.global_position"),
        (case(_at(head + 1)), grpc.StatusCode.INVALID_ARGUMENT, "beyond"),
        (
            case(audit_service_pb2.AsOf(recorded_at=stamp(datetime.now(UTC) + timedelta(hours=1)))),
            grpc.StatusCode.INVALID_ARGUMENT,
            "in the future",
        ),
        (case(_at(1)), grpc.StatusCode.NOT_FOUND, "not opened yet"),
        (case(_at(head), "ghost"), grpc.StatusCode.NOT_FOUND, "ghost"),
        (
            lambda: audit.GetCustomerAsOf(
                audit_service_pb2.GetCustomerAsOfRequest(customer_id=story.duplicate, as_of=_at(1))
            ),
            grpc.StatusCode.NOT_FOUND,
            "not registered yet",
        ),
        (
            lambda: audit.GetTimelineAsOf(
                audit_service_pb2.GetTimelineAsOfRequest(
                    timeline=timeline_service_pb2.GetTimelineRequest(
                        customer_id=story.survivor, page_token="nonsense"
                    ),
                    as_of=_at(head),
                )
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "timeline.page_token",
        ),
        (
            lambda: audit.GetTimelineAsOf(
                audit_service_pb2.GetTimelineAsOfRequest(
                    timeline=timeline_service_pb2.GetTimelineRequest(
                        customer_id=story.survivor, page_size=501
                    ),
                    as_of=_at(head),
                )
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "timeline.page_size",
        ),
    ]
    for call, code, said in cases:
        refused = _refused(call)
        assert refused.code() == code, said
        assert said in refused.details(), refused.details()
    as_agent = audit_service_pb2_grpc.AuditServiceStub(story.agent_channel)
    denied = _refused(
        lambda: as_agent.GetCaseAsOf(
            audit_service_pb2.GetCaseAsOfRequest(case_id=story.case_id, as_of=_at(head))
        )
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED


def _plain(message: Message) -> object:
    return json.loads(json.dumps(MessageToDict(message, always_print_fields_with_no_presence=True)))


def test_the_cli_prints_json_when_piped_with_an_auditor_s_token(story: Story) -> None:
    target, position = story.target, story.before_transfer
    case = _cli(target, "as-of", "--case", story.case_id, "--position", str(position))
    assert case.returncode == 0, case.stderr
    reply = json.loads(case.stdout)
    assert reply["case"] == _plain(story.cases[position])
    assert int(reply["lastPosition"]) == story.cases[position].last_position
    merged_at = max(p for p, c in story.customers.items() if c.duplicates)
    customer = _cli(target, "as-of", "--customer", story.survivor, "--position", str(merged_at))
    assert customer.returncode == 0, customer.stderr
    assert json.loads(customer.stdout)["customer"] == _plain(story.customers[merged_at])
    timeline = _cli(
        target,
        "as-of",
        "--customer",
        story.survivor,
        "--timeline",
        "--position",
        str(merged_at),
        "--page-size",
        "2",
    )
    assert timeline.returncode == 0, timeline.stderr
    rows = [json.loads(line) for line in timeline.stdout.splitlines()]
    assert rows == [_plain(entry) for entry in story.timelines[merged_at]]


def test_the_cli_prints_a_table_on_a_terminal(story: Story) -> None:
    stub = audit_service_pb2_grpc.AuditServiceStub(story.auditor_channel)
    position = story.before_transfer
    args = audit_cli.parser().parse_args(
        ["as-of", "--case", story.case_id, "--position", str(position)]
    )
    out = io.StringIO()
    assert audit_cli.run(stub, args, out, as_json=False) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == (
        f"case {story.case_id} as of global position {position}"
        f" (its last event: {story.cases[position].last_position})"
    )
    assert (
        "  assignee" in out.getvalue()
        and lines[1:]
        and all(line.startswith("  ") for line in lines[1:])
    )
    assert any(line.split() == ["assignee", "agent-7"] for line in lines)
    args = audit_cli.parser().parse_args(
        ["as-of", "--customer", story.survivor, "--timeline", "--position", str(position)]
    )
    out = io.StringIO()
    assert audit_cli.run(stub, args, out, as_json=False) == 0
    rows = out.getvalue().splitlines()
    assert [int(row.split()[0]) for row in rows] == [
        e.global_position for e in story.timelines[position]
    ]


def test_the_cli_says_what_went_wrong_and_exits_2(story: Story) -> None:
    target = story.target
    beyond = _cli(target, "as-of", "--case", story.case_id, "--position", "999999")
    assert beyond.returncode == 2
    assert "INVALID_ARGUMENT: as_of.global_position" in beyond.stderr
    missing = _cli(target, "as-of", "--case", "ghost", "--position", "1")
    assert missing.returncode == 2 and "NOT_FOUND" in missing.stderr
    no_point = _cli(target, "as-of", "--case", story.case_id)
    assert no_point.returncode == 2 and "--position" in no_point.stderr
    wrong = _cli(target, "as-of", "--case", story.case_id, "--timeline", "--position", "1")
    assert wrong.returncode == 2 and "--timeline needs --customer" in wrong.stderr


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A test's own stores, of each kind in turn."""
    return backend_for(request, tmp_path)


def test_a_row_altered_under_a_kept_view_is_found_and_the_history_before_it_still_answers(
    backend: Backend,
) -> None:
    system, server, client = _serve(backend)
    auditor = audit_service_pb2_grpc.AuditServiceStub(
        server.access.channel(fixed_token=server.access.token(Role.AUDITOR, "auditor-1"))
    )
    try:
        customer = _register(client, "Chika Mori")
        case = _open_case(client, customer)
        for n in range(EVERY + 5):
            client.cases.AddNote(
                case_service_pb2.AddNoteRequest(
                    context=client.context(), case_id=case, text=f"note {n:03}"
                )
            )
        records = system.store.read_stream(f"case-{case}")
        head = records[-1].global_position

        def as_of(position: int) -> audit_service_pb2.CaseAsOf:
            request = audit_service_pb2.GetCaseAsOfRequest(case_id=case, as_of=_at(position))
            return auditor.GetCaseAsOf(request)

        assert as_of(head).last_position == head  # folded whole: views kept on the way
        kept = records[EVERY - 1]  # the event the first kept view was folded to
        ((data,),) = backend.execute(
            "SELECT data FROM events WHERE global_position = ?", "", kept.global_position
        )
        altered = bytes(data).replace(b"note ", b"NOTE ")
        assert altered != bytes(data)
        backend.execute(
            "UPDATE events SET data = ? WHERE global_position = ?",
            "",
            altered,
            kept.global_position,
        )
        refused = _refused(lambda: as_of(head))
        assert refused.code() == grpc.StatusCode.DATA_LOSS
        assert f"revision {kept.revision}" in refused.details()
        earlier = records[EVERY // 2].global_position
        assert as_of(earlier).last_position == earlier  # the history up to it still verifies
    finally:
        client.close()
        server.stop(1)
        system.close()
