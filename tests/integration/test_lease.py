"""Leases: one holder at a time, across processes, and a killed holder is replaced at once."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from crm.lease import FileLease, Lease
from crm.postgres_lease import HOLDER_GIVES_UP_SECONDS, SERVER_GIVES_UP_SECONDS, PostgresLease
from tests.grpc_client import poll
from tests.postgres_server import PostgresServer

LeaseMaker = Callable[[], Lease]


def _hold(make: LeaseMaker, holding: Event) -> None:
    """In a child process: take the lease, say so, and keep it until killed."""
    lease = make()
    assert lease.try_acquire()
    holding.set()
    threading.Event().wait(60)


class _PostgresLeaseMaker:
    """Picklable for spawned processes (a lambda is not)."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name

    def __call__(self) -> Lease:
        return PostgresLease(self.url, self.name)


class _FileLeaseMaker:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self) -> Lease:
        return FileLease(self.path)


@pytest.fixture(params=["file", "postgres"])
def make_lease(request: pytest.FixtureRequest, tmp_path: Path) -> LeaseMaker:
    if request.param == "file":
        return _FileLeaseMaker(tmp_path / "relay.db.lease")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return _PostgresLeaseMaker(server.url, f"lease-{tmp_path.name}")


def test_one_holder_at_a_time_and_a_release_hands_it_on(make_lease: LeaseMaker) -> None:
    first, second = make_lease(), make_lease()
    assert first.try_acquire() and first.held()
    assert first.try_acquire()  # taking it again is harmless
    assert not second.try_acquire() and not second.held()
    first.release()
    assert not first.held()
    assert second.try_acquire() and second.held()
    second.release()


def test_a_killed_holder_is_replaced_by_a_waiting_standby(make_lease: LeaseMaker) -> None:
    context = multiprocessing.get_context("spawn")
    holding = context.Event()
    holder = context.Process(target=_hold, args=(make_lease, holding))
    holder.start()
    standby = make_lease()
    stop = threading.Event()
    took_over = threading.Event()

    def wait_for_the_lease() -> None:
        if standby.wait(stop, retry=0.05):
            took_over.set()

    waiter = threading.Thread(target=wait_for_the_lease)
    try:
        assert holding.wait(30)
        assert not standby.try_acquire()
        waiter.start()
        holder.kill()  # SIGKILL: the holder releases nothing itself
        poll(took_over.is_set, timeout=15)
        assert standby.held()
    finally:
        stop.set()
        holder.join(10)
        if waiter.is_alive():
            waiter.join(10)
        standby.release()


def test_a_stop_request_ends_the_wait_of_a_standby(make_lease: LeaseMaker) -> None:
    holder, standby = make_lease(), make_lease()
    assert holder.try_acquire()
    stop = threading.Event()
    stop.set()
    assert standby.wait(stop) is False
    holder.release()


def test_a_postgres_holder_cut_off_gives_up_before_the_server_frees_the_lock(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    lease = PostgresLease(postgres_server.url, f"lease-{tmp_path.name}")
    assert lease.try_acquire()
    try:
        session = lease._connection
        assert session is not None
        # the server probes this session and ends it, freeing the lock, when probes go unanswered
        probes = [
            session.execute(f"SHOW {name}").fetchone()
            for name in ("tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count")
        ]
        idle, interval, count = (int(str(row[0]).rstrip("s")) for row in probes if row)
        assert idle + interval * count == SERVER_GIVES_UP_SECONDS
        # and the holder's own side stops trusting the line sooner
        assert session.info.get_parameters()["tcp_user_timeout"] == str(
            HOLDER_GIVES_UP_SECONDS * 1000
        )
        assert HOLDER_GIVES_UP_SECONDS < SERVER_GIVES_UP_SECONDS
    finally:
        lease.release()
