"""The doorbell wakes a follower in another process at once, and a dead listener harms no writer."""

from __future__ import annotations

import multiprocessing
import os
import socket
import time
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

from crm.doorbell import Doorbell, doorbell_directory, ring_across_processes
from crm.notify import ChangeSignal

DEADLINE = 10.0


def _ring_when_told(directory: str, go: EventType, rung: EventType) -> None:
    signal = ChangeSignal()
    bell = ring_across_processes(signal, Path(directory) / "events.db")
    go.wait(DEADLINE)
    time.sleep(0.6)  # past the listing cache, so the parent's socket is seen
    signal.notify()
    rung.set()
    bell.close()


def test_a_notify_in_one_process_wakes_a_waiter_in_another(tmp_path: Path) -> None:
    signal = ChangeSignal()
    bell = ring_across_processes(signal, tmp_path / "events.db")
    spawn = multiprocessing.get_context("spawn")  # no fork of a process full of threads
    go, rung = spawn.Event(), spawn.Event()
    child = spawn.Process(target=_ring_when_told, args=(str(tmp_path), go, rung))
    child.start()
    try:
        seen = signal.generation
        go.set()
        generation = signal.wait(DEADLINE * 3, seen)
        assert generation != seen, "the waiter was not woken by the other process"
        assert rung.wait(DEADLINE)
    finally:
        child.join(DEADLINE)
        bell.close()


def test_every_process_that_opens_one_file_shares_one_short_directory(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 80) / "events.db"
    assert doorbell_directory(deep) == doorbell_directory(deep.parent / "." / "events.db")
    assert len(str(doorbell_directory(deep))) < 60
    assert doorbell_directory(deep) != doorbell_directory(tmp_path / "views.db")


def test_a_ring_for_a_listener_that_died_removes_its_socket_and_raises_nothing(
    tmp_path: Path,
) -> None:
    directory = doorbell_directory(tmp_path / "events.db")
    directory.mkdir(exist_ok=True)
    stale = directory / f"{os.getpid()}-dead.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(stale))
    dead.close()  # the file stays, nobody listens: as after a SIGKILL

    bell = Doorbell(directory)
    bell.ring()
    bell.close()

    assert not stale.exists()


def test_a_closed_doorbell_removes_its_socket(tmp_path: Path) -> None:
    bell = ring_across_processes(ChangeSignal(), tmp_path / "events.db")
    sockets = list(doorbell_directory(tmp_path / "events.db").glob("*.sock"))
    assert len(sockets) == 1
    bell.close()
    assert not sockets[0].exists()
