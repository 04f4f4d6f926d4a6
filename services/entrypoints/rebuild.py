"""`crm-rebuild`: rebuild projections from event 0 into a fresh view store, showing progress.

Replays the event store into one named projection (--projection), or all of them, of a new
SQLite file (--into), or of the configured view store when those projections are empty there.
On a terminal one line, refreshed in place, shows the events done, events per second and the
time left; otherwise a log line says the same every --progress-interval seconds. The event store
is only read. An interrupted rebuild (Ctrl-C, a crash) leaves every view consistent with its
checkpoint: run the same command with --resume to finish it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from crm import logs
from crm.settings import EVENT_STORE_URL, LOG_FORMAT, PROJECTION, READ_STORE_URL
from crm.startup import SettingsParser, exit_on_error
from projections.catalogue import PROJECTION_NAMES
from projections.runner import rebuild
from services.bootstrap import CODEC, Rebuild, build_rebuild

PROG = "crm-rebuild"
USES = (EVENT_STORE_URL, READ_STORE_URL, PROJECTION, LOG_FORMAT)
INTERRUPTED = 130  # the shell's status for a command ended by Ctrl-C

log = logging.getLogger("crm.rebuild")


def add_progress_interval(group: argparse._ArgumentGroup) -> None:
    """The option of how often a rebuild not on a terminal logs its progress."""
    group.add_argument(
        "--progress-interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="seconds between progress lines when not on a terminal (default 10)",
    )


def main(argv: list[str] | None = None) -> None:
    parser = SettingsParser(PROG, __doc__, USES)
    tool = parser.add_argument_group("rebuild")
    tool.add_argument(
        "--into",
        type=Path,
        default=None,
        help="a fresh SQLite file to rebuild into; else the configured view store, whose"
        " projections must then be empty",
    )
    tool.add_argument("--resume", action="store_true", help="finish a rebuild that was interrupted")
    add_progress_interval(tool)
    with exit_on_error(PROG):
        settings, args = parser.settings(argv)
        logs.configure(settings.log_format)
        named = (settings.projection,) if settings.projection else PROJECTION_NAMES
        job = build_rebuild(settings, args.into, named, resume=args.resume)
    raise SystemExit(run(job, args.progress_interval))


def run(job: Rebuild, interval: float, stream: TextIO | None = None) -> int:
    """Rebuild, reporting progress; returns the exit status (INTERRUPTED after Ctrl-C)."""
    out = stream or sys.stderr
    total = job.store.last_position()
    names = ", ".join(job.projections)
    report = Progress(total, out, terminal=out.isatty(), interval=interval)
    log.info("rebuilding %s from the store's %s events into %s", names, f"{total:,}", job.target)
    try:
        position = rebuild(
            job.store,
            job.views,
            CODEC,
            projections=job.projections,
            progress=report,
            resume=job.resume,
        )
    except KeyboardInterrupt:
        report.end()
        log.warning(
            "interrupted at position %d; run the same command with --resume to finish",
            report.position,
        )
        return INTERRUPTED
    finally:
        job.close()
    report.end()
    elapsed = report.elapsed()
    rate = report.done / elapsed if elapsed > 0 else 0.0
    print(
        f"rebuilt {names}: {report.done:,} events up to position {position:,}"
        f" in {elapsed:.1f} s ({rate:,.0f} events/s) into {job.target}",
        flush=True,
    )
    return 0


class Progress:
    """Events done, events per second and time left, for a person watching or for the logs.

    On a terminal: one line, rewritten in place (carriage return) after every batch. Otherwise:
    one log line per `interval` seconds, so a log file does not fill up with progress.
    """

    def __init__(
        self,
        total: int,
        out: TextIO,
        *,
        terminal: bool,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.done = 0
        self.position = 0
        self._out = out
        self._terminal = terminal
        self._interval = interval
        self._clock = clock
        self._started = self._logged = clock()
        self._shown = 0  # width of the line on the terminal
        self._logged_done = 0

    def __call__(self, done: int, position: int) -> None:
        self.done, self.position = done, position
        if self._terminal:
            line = self.line()
            self._out.write("\r" + line.ljust(self._shown))
            self._out.flush()
            self._shown = len(line)
        elif self._clock() - self._logged >= self._interval:
            self._logged = self._clock()
            self._log()

    def end(self) -> None:
        """The last word: the terminal line ends, or a last log line is written."""
        if self._terminal:
            if self._shown:
                self._out.write("\n")
                self._out.flush()
        elif self.done != self._logged_done:
            self._log()

    def elapsed(self) -> float:
        return self._clock() - self._started

    def line(self) -> str:
        elapsed = self.elapsed()
        rate = self.done / elapsed if elapsed > 0 else 0.0
        share = self.position / self.total if self.total else 1.0
        left = _time_left(self.total - self.position, self.position / elapsed if elapsed else 0)
        return f"{self.done:,} events ({share:.0%}), {rate:,.0f} events/s, {left} left"

    def _log(self) -> None:
        self._logged_done = self.done
        log.info(
            self.line(),
            extra={"events_done": self.done, "position": self.position, "total": self.total},
        )


def _time_left(remaining: int, per_second: float) -> str:
    if remaining <= 0:
        return "0:00:00"
    if per_second <= 0:
        return "?"
    return str(timedelta(seconds=round(remaining / per_second)))


if __name__ == "__main__":
    main()
