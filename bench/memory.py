"""Resident memory of the embedded system after a long history, in a process of its own.

`python -m bench.memory EVENTS DATA_DIR` builds the system `crm-server` runs (projector and
deadline process running), writes a realistic history of at least EVENTS events through the
command path, waits for the projector, and prints one JSON object: the events and the RSS.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bench.history import HistoryWriter
from crm.settings import Settings
from services.bootstrap import build_system


def rss_kib(field: str = "VmRSS") -> int:
    """This process's resident set (or `VmHWM`, its peak) in KiB, from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def main() -> None:
    events, data_dir = int(sys.argv[1]), Path(sys.argv[2])
    system = build_system(Settings.defaults(data_dir=data_dir))
    assert system.projector is not None and system.deadlines is not None
    before = rss_kib()
    system.projector.start()
    system.deadlines.start()
    writer = HistoryWriter(system.store, seed=7)
    started = time.perf_counter()
    while system.store.last_position() < events:
        writer.write(500)
    written = system.store.last_position()
    caught_up = system.projector.wait_until(written, timeout=300)
    result = {
        "events": written,
        "seconds": round(time.perf_counter() - started, 1),
        "projector_caught_up": caught_up,
        "rss_start_mib": round(before / 1024, 1),
        "rss_mib": round(rss_kib() / 1024, 1),
        "peak_rss_mib": round(rss_kib("VmHWM") / 1024, 1),
    }
    system.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
