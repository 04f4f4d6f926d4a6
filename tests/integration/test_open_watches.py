"""Open watches hold no thread: the server keeps answering, and cancel or stop releases them.

Each WatchTimeline waits for news on the event loop, not on a thread, so hundreds of idle
watches cost the other calls nothing. Deadlines here are generous bounds against a hang, never
timing measurements (speed is measured by benchmarks).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from bench.server_thread import ServerThread
from crm.settings import Settings
from crm.v1 import (
    case_events_pb2,
    case_service_pb2,
    common_pb2,
    customer_events_pb2,
    customer_service_pb2,
    timeline_service_pb2,
)
from services.bootstrap import System, build_system
from tests.grpc_client import Client, poll

REGISTERED = "crm.customer.CustomerRegistered.v1"
OPENED = "crm.case.CaseOpened.v1"
DEADLINE = 30.0  # seconds: a bound against a hang, far above any expected answer time


@dataclass
class Running:
    system: System
    server: ServerThread
    client: Client


def _start(data_dir: Path) -> Running:
    system = build_system(Settings.defaults(data_dir=data_dir))
    assert system.projector is not None
    system.projector.start()
    server = ServerThread(system)
    return Running(system, server, Client(server.target, prefix="watches"))


def _stop(running: Running) -> None:
    running.client.close()
    running.server.stop(1)
    running.system.close()


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    started = _start(tmp_path_factory.mktemp("open-watches"))
    yield started
    _stop(started)


def _register(client: Client) -> str:
    return client.customers.RegisterCustomer(
        customer_service_pb2.RegisterCustomerRequest(
            context=client.context(),
            name="Mika Ono",
            language="ja",
            segment=customer_events_pb2.SEGMENT_B2C,
        ),
        timeout=DEADLINE,
    ).aggregate_id


def _open_case(client: Client, customer_id: str) -> str:
    return client.cases.OpenCase(
        case_service_pb2.OpenCaseRequest(
            context=client.context(),
            customer_id=customer_id,
            channel=common_pb2.CHANNEL_CHAT,
            category=case_events_pb2.CATEGORY_SHIPPING_FEES,
            subject="Where is my parcel",
        ),
        timeout=DEADLINE,
    ).aggregate_id


class Watch:
    """One open WatchTimeline call: its entries as they come, and the call to cancel."""

    def __init__(self, client: Client, customer_id: str) -> None:
        request = timeline_service_pb2.WatchTimelineRequest(customer_id=customer_id)
        self.call = client.timeline.WatchTimeline(request, timeout=120)
        self.entries: Iterator[timeline_service_pb2.TimelineEntry] = iter(self.call)

    def next_type(self) -> str:
        return next(self.entries).event_type

    def cancel(self) -> None:
        self.call.cancel()  # type: ignore[no-untyped-call]  # grpc-stubs leave it untyped


def _watch(client: Client, customer_id: str, count: int) -> list[Watch]:
    """`count` open watches of the customer, each past its history (one registration)."""
    watches = [Watch(client, customer_id) for _ in range(count)]
    for watch in watches:
        assert watch.next_type() == REGISTERED
    return watches


def _cancel(watches: list[Watch]) -> None:
    for watch in watches:
        watch.cancel()


def _projected(client: Client, customer_id: str) -> bool:
    return bool(client.whole_timeline(customer_id))


def test_cancelling_watches_releases_them(running: Running) -> None:
    client, server = running.client, running.server
    customer_id = _register(client)
    poll(lambda: _projected(client, customer_id))
    idle = server.tasks()
    watches = _watch(client, customer_id, 20)
    assert server.tasks() >= idle + 20  # a task per open call
    _cancel(watches)
    poll(lambda: server.tasks() <= idle, timeout=DEADLINE)


def test_other_calls_answer_while_200_watches_wait(running: Running) -> None:
    client = running.client
    watched = _register(client)
    poll(lambda: _projected(client, watched))
    watches = _watch(client, watched, 200)
    try:
        other = _register(client)
        for _ in range(5):
            case_id = _open_case(client, other)
            case = client.cases.GetCase(
                case_service_pb2.GetCaseRequest(case_id=case_id), timeout=DEADLINE
            )
            assert case.case_id == case_id
            client.timeline.GetTimeline(
                timeline_service_pb2.GetTimelineRequest(customer_id=other), timeout=DEADLINE
            )
    finally:
        _cancel(watches)


def test_a_command_is_seen_by_each_of_50_open_watches(running: Running) -> None:
    client = running.client
    customer_id = _register(client)
    poll(lambda: _projected(client, customer_id))
    watches = _watch(client, customer_id, 50)
    try:
        _open_case(client, customer_id)
        assert [watch.next_type() for watch in watches] == [OPENED] * 50
    finally:
        _cancel(watches)


def test_stopping_the_server_ends_open_watches_within_the_grace_period(tmp_path: Path) -> None:
    started = _start(tmp_path)
    client = started.client
    try:
        customer_id = _register(client)
        poll(lambda: _projected(client, customer_id))
        watches = _watch(client, customer_id, 20)
        ended: list[grpc.StatusCode] = []

        def drain(watch: Watch) -> None:
            for _ in watch.entries:
                pass
            ended.append(watch.call.code())

        drains = [threading.Thread(target=drain, args=(w,)) for w in watches]
        for thread in drains:
            thread.start()
        grace = 10.0
        began = time.monotonic()
        started.server.stop(grace)
        assert time.monotonic() - began < grace
        for thread in drains:
            thread.join(DEADLINE)
        assert ended == [grpc.StatusCode.OK] * 20
    finally:
        _stop(started)


def test_watches_of_other_customers_do_not_read_their_entries_for_a_batch_not_theirs(
    tmp_path: Path,
) -> None:
    running = _start(tmp_path)
    reads: list[str] = []
    views = running.system.view_store
    read_entries = views.entries_applied_after

    def counted(customer_id: str, after: int, limit: int) -> Any:
        reads.append(customer_id)
        return read_entries(customer_id, after, limit)

    views.entries_applied_after = counted  # type: ignore[method-assign,assignment]
    try:
        client = running.client
        idle = [_register(client) for _ in range(20)]
        active = _register(client)
        poll(lambda: all(_projected(client, c) for c in [*idle, active]))
        watches = [Watch(client, customer_id) for customer_id in idle]
        mine = Watch(client, active)
        for watch in [*watches, mine]:
            assert watch.next_type() == REGISTERED
        reads.clear()

        _open_case(client, active)

        assert mine.next_type() == OPENED
        assert set(reads) == {active}  # the twenty idle watches read nothing of their own
        _cancel([*watches, mine])
    finally:
        _stop(running)


def test_a_survivors_watch_sees_the_entries_of_a_profile_merged_into_it(tmp_path: Path) -> None:
    running = _start(tmp_path)
    try:
        client = running.client
        survivor, duplicate = _register(client), _register(client)
        case_id = _open_case(client, duplicate)
        poll(lambda: _projected(client, survivor) and len(client.whole_timeline(duplicate)) >= 2)
        (watch,) = _watch(client, survivor, 1)
        client.customers.MergeCustomers(
            customer_service_pb2.MergeCustomersRequest(
                context=client.context(),
                duplicate_customer_id=duplicate,
                survivor_customer_id=survivor,
            ),
            timeout=DEADLINE,
        )
        assert sorted(watch.next_type() for _ in range(2)) == [
            "crm.customer.CustomerMerged.v1",
            "crm.customer.DuplicateAbsorbed.v1",
        ]

        client.cases.AddNote(  # on the merged-away profile's case: now on the survivor's timeline
            case_service_pb2.AddNoteRequest(context=client.context(), case_id=case_id, text="hi"),
            timeout=DEADLINE,
        )

        assert watch.next_type() == "crm.case.CaseNoteAdded.v1"
        watch.cancel()
    finally:
        _stop(running)


def test_calls_beyond_the_limit_are_refused_with_resource_exhausted(tmp_path: Path) -> None:
    system = build_system(Settings.defaults(data_dir=tmp_path))
    assert system.projector is not None
    system.projector.start()
    server = ServerThread(system, max_concurrent_calls=3)
    client = Client(server.target, prefix="limited")
    try:
        customer_id = _register(client)
        poll(lambda: _projected(client, customer_id))
        idle = server.tasks()
        watches = _watch(client, customer_id, 3)  # the limit, held open
        with pytest.raises(grpc.RpcError) as refused:
            _register(client)
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        _cancel(watches)
        poll(lambda: server.tasks() <= idle, timeout=DEADLINE)
        assert _register(client)  # room again once the watches ended
    finally:
        client.close()
        server.stop(1)
        system.close()
