"""`crm-deadline-worker`: the deadline process as a worker of its own (the distributed shape).

It keeps no checkpoint: at start it reads the event store from event 0 to rebuild its timers.
Every command it sends has a request id derived from its cause, so a restart records nothing
twice.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

from crm import logs
from crm.settings import EVENT_STORE_URL, LOG_FORMAT, SLA_POLICY_FILE
from crm.startup import SettingsParser, exit_on_error
from services.bootstrap import DeadlineWorker, build_deadline_worker

PROG = "crm-deadline-worker"
USES = (EVENT_STORE_URL, SLA_POLICY_FILE, LOG_FORMAT)


def main(argv: list[str] | None = None) -> None:
    with exit_on_error(PROG):
        settings, _ = SettingsParser(PROG, __doc__, USES).settings(argv)
        logs.configure(settings.log_format)
        worker = build_deadline_worker(settings)
    run(worker)


def run(worker: DeadlineWorker) -> None:
    """Until SIGTERM or SIGINT; then stop the process and close the store."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker.process.start()
    stop.wait()
    worker.process.stop()
    worker.store.close()


if __name__ == "__main__":
    main()
