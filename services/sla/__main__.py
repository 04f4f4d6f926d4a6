"""`crm-deadline-worker`: the deadline process as a worker of its own (the distributed shape)."""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from types import FrameType

from crm import logs
from crm.eventstore.factory import open_event_store
from services.bootstrap import CODEC, build_applications, read_policy, system_clock
from services.sla.process import DeadlineProcess


def main(argv: list[str] | None = None) -> None:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="crm-deadline-worker", description=__doc__)
    parser.add_argument(
        "--event-store-url", default=env("CRM_EVENT_STORE_URL", "sqlite:///var/events.db")
    )
    parser.add_argument("--sla-policy-file", type=Path, default=env("CRM_SLA_POLICY_FILE") or None)
    parser.add_argument(
        "--log-format", choices=("auto", "json", "text"), default=env("CRM_LOG_FORMAT", "auto")
    )
    args = parser.parse_args(argv)
    logs.configure(args.log_format)
    store = open_event_store(args.event_store_url)
    cases = build_applications(store, system_clock).cases
    process = DeadlineProcess(store, cases, read_policy(args.sla_policy_file), system_clock, CODEC)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    process.start()
    stop.wait()
    process.stop()
    store.close()


if __name__ == "__main__":
    main()
