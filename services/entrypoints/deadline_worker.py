"""`crm-deadline-worker`: the deadline process as a worker of its own (the distributed shape).

It saves its timers (the open cases' SLA watches) with the position they reflect in its checkpoint
file (`--deadline-checkpoint-url`), now and then and when it stops; at start it loads them and
reads only the events after that position. Every command it sends has a request id derived from
its cause, so a restart records nothing twice.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from crm import logs
from crm.settings import DEADLINE_CHECKPOINT_URL, EVENT_STORE_URL, LOG_FORMAT, SLA_POLICY_FILE
from crm.startup import SettingsParser, exit_on_error
from services.bootstrap import DeadlineWorker, build_deadline_worker

PROG = "crm-deadline-worker"
USES = (EVENT_STORE_URL, DEADLINE_CHECKPOINT_URL, SLA_POLICY_FILE, LOG_FORMAT)


def main(argv: list[str] | None = None) -> None:
    with exit_on_error(PROG):
        settings, _ = SettingsParser(PROG, __doc__, USES).settings(argv)
        logs.configure(settings.log_format)
        worker = build_deadline_worker(settings)
    run(worker)


def run(worker: DeadlineWorker) -> None:
    """Until SIGTERM or SIGINT; then stop the process (saving its state) and close the store."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker.process.start()
    stop.wait()
    worker.close()


if __name__ == "__main__":
    main()
