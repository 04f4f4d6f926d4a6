"""Commands on one stream take turns; other streams do not wait; locks go when unused."""

from __future__ import annotations

import threading

import pytest

from crm.stream_queue import StreamQueue
from tests.contract.eventstore_contract import DEADLINE_SECONDS, wait_until


def test_one_stream_takes_turns_and_another_does_not_wait() -> None:
    queue = StreamQueue()
    inside = threading.Event()
    release = threading.Event()
    entered: list[str] = []

    def hold(stream: str, name: str) -> None:
        with queue.turn(stream):
            entered.append(name)
            if name == "first":
                inside.set()
                assert release.wait(DEADLINE_SECONDS)

    first = threading.Thread(target=hold, args=("case-1", "first"), daemon=True)
    first.start()
    assert inside.wait(DEADLINE_SECONDS)
    second = threading.Thread(target=hold, args=("case-1", "second"), daemon=True)
    second.start()
    other = threading.Thread(target=hold, args=("case-2", "other"), daemon=True)
    other.start()
    other.join(DEADLINE_SECONDS)
    assert entered == ["first", "other"]  # case-2 went ahead while case-1 was held
    wait_until(lambda: len(queue) == 1, "case-2's lock to go")
    release.set()
    first.join(DEADLINE_SECONDS)
    second.join(DEADLINE_SECONDS)
    assert entered == ["first", "other", "second"]
    assert len(queue) == 0


def test_a_lock_is_dropped_when_its_holder_fails() -> None:
    queue = StreamQueue()
    with pytest.raises(RuntimeError), queue.turn("case-1"):
        raise RuntimeError("decide failed")
    assert len(queue) == 0
    with queue.turn("case-1"):  # and the stream can be taken again
        assert len(queue) == 1
