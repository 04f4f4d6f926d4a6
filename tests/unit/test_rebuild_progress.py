"""crm-rebuild's progress: one line rewritten in place on a terminal, a log line per interval
otherwise, each saying the events done, the events per second and the time left."""

from __future__ import annotations

import io
import logging

import pytest

from services.entrypoints.rebuild import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_line_says_events_done_the_rate_and_the_time_left() -> None:
    clock = Clock()
    progress = Progress(100_000, io.StringIO(), terminal=True, interval=10, clock=clock)
    clock.now += 5
    progress(20_000, 20_000)
    assert progress.line() == "20,000 events (20%), 4,000 events/s, 0:00:20 left"


def test_on_a_terminal_the_line_is_rewritten_in_place() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress(30_000, out, terminal=True, interval=10, clock=clock)
    clock.now += 1
    progress(10_000, 10_000)
    clock.now += 1
    progress(30_000, 30_000)
    progress.end()
    first, second = out.getvalue().split("\r")[1:]
    assert first == "10,000 events (33%), 10,000 events/s, 0:00:02 left"
    assert second.startswith("30,000 events (100%), 15,000 events/s, 0:00:00 left")
    assert second.endswith("\n") and len(second.rstrip("\n")) >= len(first)


def test_otherwise_one_log_line_per_interval_and_one_at_the_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress(50_000, out, terminal=False, interval=10, clock=clock)
    with caplog.at_level(logging.INFO, logger="crm.rebuild"):
        for done in range(10_000, 50_001, 10_000):
            clock.now += 4
            progress(done, done)
        progress.end()
    assert out.getvalue() == ""
    logged = [record.getMessage() for record in caplog.records]
    assert [line.split(" events ")[0] for line in logged] == ["30,000", "50,000"]  # 50,000: end
