"""`crm-deadline-worker`: the deadline process as a worker of its own (the distributed shape).

It saves its timers (the open cases' SLA watches) with the position they reflect in its checkpoint
file (`--deadline-checkpoint-url`), now and then and when it stops; at start it loads them and
reads only the events after that position. Every command it sends has a request id derived from
its cause, so a restart records nothing twice.

Several copies may run; the one holding the lease beside the checkpoint works, the others wait
as standbys and take over, from the checkpoint, when it is gone (crm/lease.py). One active copy
rather than timers split by partition: the work is small (the open cases' timers), and a
takeover resumes from the shared checkpoint at once. A copy that loses its lease exits with 1.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

from crm import logs
from crm.security_settings import PERSONAL_DATA
from crm.settings import DEADLINE_CHECKPOINT_URL, EVENT_STORE_URL, LOG_FORMAT, SLA_POLICY_FILE
from crm.startup import SettingsParser, exit_on_error
from services.bootstrap import DeadlineWorker, build_deadline_worker

PROG = "crm-deadline-worker"
LEASE_CHECK_SECONDS = 1.0
log = logging.getLogger("crm.deadlines")
USES = (EVENT_STORE_URL, DEADLINE_CHECKPOINT_URL, SLA_POLICY_FILE, *PERSONAL_DATA, LOG_FORMAT)


def main(argv: list[str] | None = None) -> None:
    with exit_on_error(PROG):
        settings, _ = SettingsParser(PROG, __doc__, USES).settings(argv)
        logs.configure(settings.log_format)
        worker = build_deadline_worker(settings)
    if run(worker):
        sys.exit(1)


def run(worker: DeadlineWorker) -> bool:
    """Until SIGTERM or SIGINT, or until the lease is lost (then True); then stop the process
    (saving its state) and close the store."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not worker.lease.try_acquire():
        log.info("deadline worker standby: another copy is active; taking over when it is gone")
        if not worker.lease.wait(stop):
            worker.close()
            return False
    log.info("deadline worker active")
    worker.process.start()
    lost = False
    while not stop.wait(LEASE_CHECK_SECONDS):
        if not worker.lease.held():
            log.error("deadline worker lost its lease; stopping so that only one copy works")
            lost = True
            break
    worker.close()
    return lost


if __name__ == "__main__":
    main()
