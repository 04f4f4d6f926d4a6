"""As-of views through gRPC on a real server: each equals what the live API answered at that
moment (a case before its transfer, a customer across a tier change, a merge and its undo, the
timeline while merged and after), bad points are refused precisely, and a row altered under a
kept view is found."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from crm.identity import Role
from crm.v1 import (
    audit_service_pb2,
    audit_service_pb2_grpc,
    case_service_pb2,
    customer_events_pb2,
    timeline_service_pb2,
)
from services.audit.case_checkpoints import EVERY
from tests.as_of_story import Story, at, story_audit, told
from tests.grpc_client import stamp
from tests.integration.test_audit_history import _open_case, _register, _serve
from tests.raw_stores import BACKENDS, Backend, backend_for


@pytest.fixture(scope="module", params=BACKENDS)
def story(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Story]:
    yield from told(request, tmp_path_factory)


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
        audit_service_pb2.GetCaseAsOfRequest(case_id=story.case_id, as_of=at(story.before_transfer))
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
            audit_service_pb2.GetCaseAsOfRequest(case_id=story.case_id, as_of=at(position))
        )
        assert again.case == view, position
    assert max(v.transfer_count for v in story.cases.values()) == 1


def test_the_customer_as_of_each_moment_is_what_get_customer_said_then(story: Story) -> None:
    tiers, merged_into, duplicates = set(), set(), set()
    for position, customer in story.customers.items():
        found = story_audit(story).GetCustomerAsOf(
            audit_service_pb2.GetCustomerAsOfRequest(customer_id=story.survivor, as_of=at(position))
        )
        assert found.customer == customer, position
        duplicate = story_audit(story).GetCustomerAsOf(
            audit_service_pb2.GetCustomerAsOfRequest(
                customer_id=story.duplicate, as_of=at(position)
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
        assert _timeline_as_of(story, story.survivor, at(position)) == timeline, position
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
            as_of=at(story.system.store.last_position()),
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
        (case(at(0)), grpc.StatusCode.INVALID_ARGUMENT, "as_of.global_position"),
        (case(at(head + 1)), grpc.StatusCode.INVALID_ARGUMENT, "beyond"),
        (
            case(audit_service_pb2.AsOf(recorded_at=stamp(datetime.now(UTC) + timedelta(hours=1)))),
            grpc.StatusCode.INVALID_ARGUMENT,
            "in the future",
        ),
        (case(at(1)), grpc.StatusCode.NOT_FOUND, "not opened yet"),
        (case(at(head), "ghost"), grpc.StatusCode.NOT_FOUND, "ghost"),
        (
            lambda: audit.GetCustomerAsOf(
                audit_service_pb2.GetCustomerAsOfRequest(customer_id=story.duplicate, as_of=at(1))
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
                    as_of=at(head),
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
                    as_of=at(head),
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
            audit_service_pb2.GetCaseAsOfRequest(case_id=story.case_id, as_of=at(head))
        )
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED


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
            request = audit_service_pb2.GetCaseAsOfRequest(case_id=case, as_of=at(position))
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
