"""`crm-admin`: operator commands on a running system.

`crm-admin rebuild PROJECTION` rebuilds one projection blue/green: from event 0 of the event
store into a new generation of its tables beside the live one, while the live views keep
answering queries and the live writer (the server's projector or a Kafka worker) keeps writing
them; then it catches up with the live head and switches queries over in one transaction, and
drops the old generation (unless --keep-old). On a terminal one line, refreshed in place, shows
the events done, events per second and the time left; otherwise a log line every
--progress-interval seconds. Interrupted (Ctrl-C, a crash), the live views serve on untouched; the
same command continues the half-built generation. A second rebuild of the same projection while
one runs is refused.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from crm import logs
from crm.errors import InvariantViolated
from crm.settings import EVENT_STORE_URL, LOG_FORMAT, READ_STORE_URL
from crm.startup import SettingsParser, exit_on_error
from projections.bluegreen import rebuild_beside
from projections.catalogue import PROJECTION_NAMES
from services.bootstrap import CODEC, Rebuild, build_blue_green
from services.entrypoints.rebuild import INTERRUPTED, Progress, add_progress_interval

PROG = "crm-admin"
USES = (EVENT_STORE_URL, READ_STORE_URL, LOG_FORMAT)
REFUSED = 1

log = logging.getLogger("crm.admin")


def main(argv: list[str] | None = None) -> None:
    parser = SettingsParser(PROG, __doc__, USES)
    tool = parser.add_argument_group("rebuild")
    tool.add_argument("command", choices=("rebuild",), help="what to do")
    tool.add_argument("projection", choices=PROJECTION_NAMES, help="the projection to rebuild")
    tool.add_argument(
        "--keep-old",
        action="store_true",
        help="keep the replaced generation's tables after the switch, to compare or inspect"
        " (nothing drops them later: drop them by hand)",
    )
    add_progress_interval(tool)
    with exit_on_error(PROG):
        settings, args = parser.settings(argv)
        logs.configure(settings.log_format)
        job = build_blue_green(settings, args.projection)
    raise SystemExit(rebuild(job, args.progress_interval, drop_old=not args.keep_old))


def rebuild(
    job: Rebuild, interval: float, *, drop_old: bool = True, stream: TextIO | None = None
) -> int:
    """Rebuild the job's projection blue/green, reporting progress; returns the exit status."""
    out = stream or sys.stderr
    (name,) = job.projections
    total = job.store.last_position()
    report = Progress(total, out, terminal=out.isatty(), interval=interval)
    log.info(
        "rebuilding %s beside the live one from the store's %s events in %s",
        name,
        f"{total:,}",
        job.target,
    )
    try:
        switched = rebuild_beside(
            job.store, job.views, CODEC, name, progress=report, drop_old=drop_old
        )
    except KeyboardInterrupt:
        report.end()
        log.warning(
            "interrupted at position %d; the live views serve on; run the same command to"
            " continue this rebuild",
            report.position,
        )
        return INTERRUPTED
    except InvariantViolated as exc:
        report.end()
        print(f"{PROG}: {exc}", file=out, flush=True)
        return REFUSED
    finally:
        job.close()
    report.end()
    elapsed = report.elapsed()
    rate = report.done / elapsed if elapsed > 0 else 0.0
    resumed = f", continued from {switched.resumed_from:,}" if switched.resumed_from else ""
    old = "dropped" if drop_old else "kept"
    print(
        f"rebuilt {name}: {report.done:,} events in {elapsed:.1f} s"
        f" ({rate:,.0f} events/s{resumed});"
        f" generation {switched.generation} serves since position {switched.position:,},"
        f" generation {switched.replaced} {old}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    main()
