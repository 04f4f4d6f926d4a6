"""`crm-what-if`: a past period under a candidate SLA policy file, beside what really happened.

The live event store is only read; per-case outcomes go to a scratch SQLite file.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from crm.settings import EVENT_STORE_URL
from crm.startup import SettingsParser, exit_on_error
from services.bootstrap import CODEC, WhatIf, build_what_if
from services.sla.what_if import (
    candidate_outcomes,
    live_outcomes,
    read_history,
    side_by_side,
    summarize,
    write_scratch,
)

PROG = "crm-what-if"
USES = (EVENT_STORE_URL,)


def main(argv: list[str] | None = None) -> None:
    parser = SettingsParser(PROG, __doc__, USES)
    tool = parser.add_argument_group("what-if")
    tool.add_argument("--policy-file", type=Path, required=True, help="candidate policy JSON")
    tool.add_argument("--since", type=_instant, required=True, help="ISO date or instant")
    tool.add_argument("--until", type=_instant, required=True, help="exclusive")
    tool.add_argument("--scratch", type=Path, default=None, help="SQLite file for per-case rows")
    with exit_on_error(PROG):
        settings, args = parser.settings(argv)
        what_if = build_what_if(settings, args.policy_file)
    run(what_if, args.since, args.until, args.scratch)


def run(what_if: WhatIf, since: datetime, until: datetime, scratch: Path | None) -> None:
    """Replay the history under both policies, write the scratch rows, print the summaries."""
    try:
        history = list(read_history(what_if.store, CODEC))
    finally:
        what_if.store.close()
    candidate = what_if.candidate
    live = live_outcomes(history)
    simulated = candidate_outcomes(history, candidate, until)
    scratch = scratch or Path(tempfile.mkdtemp(prefix="crm-what-if-")) / "what-if.db"
    write_scratch(scratch, "live", live.values())
    write_scratch(scratch, candidate.version, simulated.values())
    before = summarize(live.values(), since, until)
    after = summarize(simulated.values(), since, until)
    print(side_by_side(before, after, candidate.version))
    print(f"per-case outcomes: {scratch}")


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


if __name__ == "__main__":
    main()
