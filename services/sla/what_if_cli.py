"""`crm-what-if`: a past period under a candidate SLA policy file, beside what really happened."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

from crm.envelope import RecordedEvent
from crm.eventstore.factory import open_event_store
from crm.eventstore.port import EventStore
from services.bootstrap import CODEC, read_policy
from services.events import DomainEvent
from services.sla.what_if import (
    candidate_outcomes,
    live_outcomes,
    side_by_side,
    summarize,
    write_scratch,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="crm-what-if", description=__doc__)
    parser.add_argument(
        "--event-store-url",
        default=os.environ.get("CRM_EVENT_STORE_URL", "sqlite:///var/events.db"),
    )
    parser.add_argument("--policy-file", type=Path, required=True, help="candidate policy JSON")
    parser.add_argument("--since", type=_instant, required=True, help="ISO date or instant")
    parser.add_argument("--until", type=_instant, required=True, help="exclusive")
    parser.add_argument("--scratch", type=Path, default=None, help="SQLite file for per-case rows")
    args = parser.parse_args(argv)
    candidate = read_policy(args.policy_file)
    store = open_event_store(args.event_store_url)
    try:
        history = list(read_history(store))
    finally:
        store.close()
    live = live_outcomes(history)
    simulated = candidate_outcomes(history, candidate, args.until)
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="crm-what-if-")) / "what-if.db"
    write_scratch(scratch, "live", live.values())
    write_scratch(scratch, candidate.version, simulated.values())
    before = summarize(live.values(), args.since, args.until)
    after = summarize(simulated.values(), args.since, args.until)
    print(side_by_side(before, after, candidate.version))
    print(f"per-case outcomes: {scratch}")


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def read_history(store: EventStore) -> Iterator[tuple[RecordedEvent, DomainEvent]]:
    position = 0
    while batch := store.read_all(after=position, limit=1000):
        for recorded in batch:
            yield recorded, cast(DomainEvent, CODEC.decode(recorded.type, recorded.data))
        position = batch[-1].global_position


if __name__ == "__main__":
    main()
