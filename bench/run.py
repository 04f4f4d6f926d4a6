"""`make bench`: what the system adds on top of its baselines, each measured in the same run.

Absolute numbers depend on the machine; read the ratios: appends against plain SQLite inserts,
commands against appends, gRPC commands against a bare grpc.aio echo server, and with
authentication on against off, latency on a long stream against a short one, GetCase with idle
watches against none, rebuild against reading back.
End-to-end lag is measured embedded (in-process projector) and through Kafka (the distributed
shape of `make run-distributed`: relay, a worker per projection).
Prints a table, then the same rows as JSON (also written to `--json PATH`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import grpc_load, kafka_lag, scale_out
from bench.as_of import measure_as_of
from bench.audit_verify import measure_verify
from bench.credentials import suite_security
from bench.grpc_load import Sample, note_request
from bench.lag import Lag, offered_load
from bench.postgres_storage import THREADS, measure_postgres_storage
from bench.server_thread import ServerThread
from bench.servers import EchoServer, add_notes, embedded, open_cases
from bench.storage import measure_storage
from services.bootstrap import System


@dataclass(frozen=True)
class Plan:
    """How long each measurement runs: the full run (< 10 min) or `--quick` (~2 min)."""

    storage_events: int
    seconds: float
    stream_lengths: tuple[int, ...]
    latency_calls: int
    lag_seconds: float
    hot_calls: int
    watch_calls: int
    memory_events: int
    scale_out_commands: int
    audit_events: int = 100_000


FULL = Plan(2000, 5.0, (10, 1_000, 10_000), 200, 8.0, 30, 500, 100_000, 2_000)
QUICK = Plan(1000, 2.0, (10, 1_000, 3_000), 100, 3.0, 15, 200, 10_000, 1_000, 20_000)
PARTITIONS = (1, 2, 4)
GROUPS = ("storage", "grpc", "kafka", "memory", "audit")
CONCURRENCY = (1, 16, 64)
AUTH_CALLERS = 16
RATES = (100, 500, 1_000)
WATCHES = 500


@dataclass(frozen=True)
class Row:
    """One measured line: its value, and its ratio to the baseline named in `against`."""

    group: str
    what: str
    value: float
    unit: str
    ratio: float | None = None
    against: str = ""
    note: str = ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a ~2 minute run with fewer events")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    parser.add_argument(
        "--only",
        choices=GROUPS,
        action="append",
        help="run only these groups (repeatable); all by default",
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    only = set(args.only or GROUPS)
    started = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        if "storage" in only:
            progress("storage: appends, commands, rebuild")
            rows += storage_rows(plan)
            progress("storage: PostgreSQL appends beside plain inserts")
            rows += postgres_storage_rows(plan)
        if "grpc" in only:
            rows += asyncio.run(grpc_rows(plan, Path(tmp) / "grpc"))
        if "kafka" in only:
            progress(f"end-to-end lag through Kafka at {RATES} commands/s")
            rows += asyncio.run(kafka_rows(plan, Path(tmp) / "kafka"))
            progress(f"relay + timeline workers through Kafka with {PARTITIONS} partitions")
            rows += scale_out_rows(plan, Path(tmp) / "scale-out")
        if "memory" in only:
            progress(f"memory: a fresh process writes {plan.memory_events} events")
            rows += memory_rows(plan, Path(tmp) / "memory")
        if "audit" in only:
            progress(f"audit: a case of {AS_OF_EVENTS} events as of a past point")
            rows += as_of_rows()
            progress(f"audit: the whole store ({plan.audit_events} events) against its seals")
            rows += audit_rows(plan)
    print_table(rows)
    document = {
        "plan": "quick" if args.quick else "full",
        "seconds": round(time.perf_counter() - started),
        "rows": [asdict(row) for row in rows],
    }
    text = json.dumps(document, indent=1)
    if args.json is not None:
        args.json.write_text(text + "\n")
    print(text)


AS_OF_EVENTS = 1_000


def as_of_rows() -> list[Row]:
    """GetCaseAsOf's work without gRPC, beside reading the live view and the bare stream."""
    ms = measure_as_of(AS_OF_EVENTS)
    n = f"a case of {ms['events']:.0f} events"
    live, read = ms["live_view"], ms["read_stream"]
    return [
        Row("audit", "live case view read (GetCaseView's work)", live * 1000, "us", 1.0, "", n),
        Row("audit", "case stream read alone", read, "ms", read / live, "live view"),
        Row(
            "audit",
            "case as of its last event, cold",
            ms["cold_head"],
            "ms",
            ms["cold_head"] / read,
            "stream read",
            "no kept view yet: read, checked, folded whole",
        ),
        Row(
            "audit",
            "case as of its middle event, cold",
            ms["cold_middle"],
            "ms",
            ms["cold_middle"] / read,
            "stream read",
        ),
        Row(
            "audit",
            "case as of its last event, warm",
            ms["warm_head"],
            "ms",
            ms["warm_head"] / read,
            "stream read",
            "from the nearest kept view; target < 100 ms",
        ),
        Row(
            "audit",
            "case as of its middle event, warm",
            ms["warm_middle"],
            "ms",
            ms["warm_middle"] / read,
            "stream read",
        ),
    ]


def storage_rows(plan: Plan) -> list[Row]:
    s = measure_storage(plan.storage_events)
    n = f"{plan.storage_events} events"
    return [
        Row("storage", "plain SQLite insert, one commit each", s["insert"], "/s", 1.0, "", n),
        Row(
            "storage", "event store append", s["append"], "/s", s["append"] / s["insert"], "insert"
        ),
        Row(
            "storage",
            "command (load, decide, append)",
            s["command"],
            "/s",
            s["command"] / s["append"],
            "append",
        ),
        Row(
            "rebuild",
            "read all events back",
            s["read_back"],
            "/s",
            1.0,
            "",
            f"{s['rebuild_events']:.0f} events",
        ),
        Row(
            "rebuild",
            "projection rebuild (all projections)",
            s["rebuild"],
            "/s",
            s["rebuild"] / s["read_back"],
            "read back",
        ),
    ]


def audit_rows(plan: Plan) -> list[Row]:
    a = measure_verify(plan.audit_events)
    n = f"{a['events']:.0f} events, SQLite"
    return [
        Row(
            "audit", "read the rows back undecoded (read_chain)", a["read_chain"], "/s", 1.0, "", n
        ),
        Row(
            "audit",
            "read the events back decoded (read_all)",
            a["read_all"],
            "/s",
            a["read_all"] / a["read_chain"],
            "read_chain",
        ),
        Row(
            "audit",
            "verify the whole store against its seals",
            a["verify"],
            "/s",
            a["verify"] / a["read_chain"],
            "read_chain",
        ),
        Row(
            "audit",
            "verify again, metadata rewritten as stored before it was canonical",
            a["verify_older"],
            "/s",
            a["verify_older"] / a["read_chain"],
            "read_chain",
        ),
    ]


def postgres_storage_rows(plan: Plan) -> list[Row]:
    p = measure_postgres_storage(plan.storage_events)
    if p is None:
        return [Row("storage", "PostgreSQL: not measured (no binaries)", 0.0, "")]
    n = f"{plan.storage_events} events"
    batched = f"{plan.storage_events / p['append_threads_transactions']:.1f} appends a commit"
    return [
        Row("storage", "plain PostgreSQL insert, one commit each", p["insert"], "/s",
            1.0, "", n),
        Row("storage", "PostgreSQL event store append", p["append"], "/s",
            p["append"] / p["insert"], "pg insert"),
        Row("storage", f"PostgreSQL event store append, {THREADS} threads", p["append_threads"],
            "/s", p["append_threads"] / p["insert"], "pg insert", batched),
    ]  # fmt: skip


async def grpc_rows(plan: Plan, data_dir: Path) -> list[Row]:
    rows: list[Row] = []
    echo = EchoServer()
    with embedded(data_dir) as (system, server):
        target = server.access
        cases = await asyncio.to_thread(open_cases, system, 64, 256, "t")
        payload = note_request(cases[0], "echo-payload").SerializeToString()
        progress("gRPC: commands beside echo at 1, 16, 64 callers")
        for callers in CONCURRENCY:
            baseline = await grpc_load.echo_throughput(echo.target, callers, plan.seconds, payload)
            done = await grpc_load.command_throughput(
                target, callers, plan.seconds, cases, f"tp{callers}"
            )
            rows.append(Row("grpc", f"echo, {callers} callers", baseline.per_second, "/s", 1.0))
            rows.append(_command_row(callers, done, baseline))
        echo.stop()
        progress(f"gRPC: {AUTH_CALLERS} callers' commands with authentication on and off")
        rows += await auth_rows(system, plan, cases)

        first: Sample | None = None
        progress(f"latency on streams of {plan.stream_lengths} events")
        for length in plan.stream_lengths:
            await settle(system)
            [case_id] = await asyncio.to_thread(open_cases, system, 1, 1, f"len{length}-")
            await asyncio.to_thread(add_notes, system, case_id, length - 1)
            sample = await grpc_load.command_latency(
                target, case_id, plan.latency_calls, f"lat{length}"
            )
            first = first or sample
            what = f"AddNote on a {length}-event stream"
            rows.append(
                Row(
                    "latency", what + ", p50", sample.p50, "ms", sample.p50 / first.p50, "10 events"
                )
            )
            rows.append(
                Row(
                    "latency", what + ", p99", sample.p99, "ms", sample.p99 / first.p99, "10 events"
                )
            )

        lag_cases = cases * 4  # 1,024 ids over the 256 cases: few in flight on one case
        progress(f"end-to-end lag at {RATES} commands/s")
        for offered in RATES:
            await settle(system)
            lag = await offered_load(
                target, system.view_store, offered, plan.lag_seconds, lag_cases, f"lag{offered}"
            )
            rows += _lag_rows("e2e lag", "ack -> views", lag)

        progress("16 callers on one case; GetCase with idle watches")
        [hot] = await asyncio.to_thread(open_cases, system, 1, 1, "hot-")
        await settle(system)
        sample = await grpc_load.hot_case(target, hot, 16, plan.hot_calls, "hot")
        aborted = sample.errors.get("ABORTED", 0)
        rows.append(
            Row(
                "hot case",
                "16 callers on one case, ABORTED",
                aborted,
                "calls",
                note=f"of {16 * plan.hot_calls}; other errors {dict(sample.errors)}",
            )
        )
        rows.append(Row("hot case", "16 callers on one case, p99", sample.p99, "ms"))

        customers = [f"tc-{c}" for c in range(64)]
        end = system.store.last_position()
        await settle(system)
        quiet = await grpc_load.get_case_with_watches(
            target, cases[0], customers, 0, plan.watch_calls, end
        )
        busy = await grpc_load.get_case_with_watches(
            target, cases[0], customers, WATCHES, plan.watch_calls, end
        )
        for label, base, value in (("p50", quiet.p50, busy.p50), ("p99", quiet.p99, busy.p99)):
            rows.append(Row("watches", f"GetCase, no watch, {label}", base, "ms", 1.0))
            rows.append(
                Row(
                    "watches",
                    f"GetCase, {WATCHES} idle watches, {label}",
                    value,
                    "ms",
                    value / base,
                    "no watch",
                )
            )
    return rows


async def kafka_rows(plan: Plan, data_dir: Path) -> list[Row]:
    missing = kafka_lag.missing_tools()
    if missing:
        note = f"not measured: a local Kafka broker needs {' and '.join(missing)}"
        return [Row("kafka lag", "ack -> GetTimeline", 0.0, "ms", note=note)]
    rows = []
    for lag in await kafka_lag.kafka_lags(data_dir, RATES, plan.lag_seconds):
        rows += _lag_rows("kafka lag", "ack -> GetTimeline", lag)
    return rows


def scale_out_rows(plan: Plan, data_dir: Path) -> list[Row]:
    missing = kafka_lag.missing_tools()
    if missing:
        note = f"not measured: a local Kafka broker needs {' and '.join(missing)}"
        return [Row("scale-out", "relay + timeline workers", 0.0, "/s", note=note)]
    runs = scale_out.measure(data_dir, plan.scale_out_commands, PARTITIONS)
    one = runs[0].per_second or 1.0
    return [
        Row(
            "scale-out",
            f"relay + timeline, {run.partitions} partitions and workers",
            run.per_second,
            "/s",
            run.per_second / one,
            "1 partition",
            note=f"{run.events} events",
        )
        for run in runs
    ]


def _lag_rows(group: str, what: str, lag: Lag) -> list[Row]:
    refused = dict(lag.errors) or "none"
    note = f"achieved {lag.achieved:.0f}/s, refused {refused}, {lag.unseen} unseen"
    note += f" (first: {lag.first_error})" if lag.first_error else ""
    return [
        Row(group, f"{what} at {lag.offered}/s, p50", lag.p50, "ms", note=note),
        Row(group, f"{what} at {lag.offered}/s, p99", lag.p99, "ms"),
    ]


async def settle(system: System) -> None:
    """Wait until the projector has caught up, so no measurement pays for the previous one."""
    assert system.projector is not None
    position = system.store.last_position()
    await asyncio.to_thread(system.projector.wait_until, position, 120.0)


async def auth_rows(system: System, plan: Plan, cases: list[str]) -> list[Row]:
    """What checking a bearer token on every call costs: two fresh servers on one system, one
    checking tokens and one open, under the same command load."""
    checked = ServerThread(system, security=suite_security())
    open_ = ServerThread(system, security=suite_security(authenticator=None))
    try:
        on, off = await grpc_load.with_and_without(
            checked.access, open_.access, AUTH_CALLERS, plan.seconds, cases, "auth"
        )
    finally:
        checked.stop()
        open_.stop()
    what = f"AddNote, {AUTH_CALLERS} callers, authentication"
    errors = (
        f"errors on {dict(on.errors)}, off {dict(off.errors)}" if on.errors or off.errors else ""
    )
    return [
        Row("auth", f"{what} off", off.per_second, "/s", 1.0, "", errors),
        Row("auth", f"{what} on", on.per_second, "/s", on.per_second / off.per_second, "auth off"),
        Row("auth", f"{what} off, p99", off.p99, "ms", 1.0),
        Row("auth", f"{what} on, p99", on.p99, "ms", on.p99 / off.p99, "auth off"),
    ]


def _command_row(callers: int, done: Sample, baseline: Sample) -> Row:
    note = f"errors {dict(done.errors)}" if done.errors else ""
    return Row(
        "grpc",
        f"AddNote, {callers} callers",
        done.per_second,
        "/s",
        done.per_second / baseline.per_second,
        "echo",
        note,
    )


def memory_rows(plan: Plan, data_dir: Path) -> list[Row]:
    """RSS of a fresh process running the embedded system after `plan.memory_events` events."""
    data_dir.mkdir(parents=True)
    output = subprocess.run(
        [sys.executable, "-m", "bench.memory", str(plan.memory_events), str(data_dir)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    m = json.loads(output.strip().splitlines()[-1])
    note = f"{m['events']} events in {m['seconds']} s; peak {m['peak_rss_mib']} MiB"
    return [
        Row("memory", "RSS at start", m["rss_start_mib"], "MiB", 1.0),
        Row(
            "memory",
            f"RSS after {m['events']} events",
            m["rss_mib"],
            "MiB",
            m["rss_mib"] / m["rss_start_mib"],
            "start",
            note,
        ),
    ]


def progress(step: str) -> None:
    """One line on stderr per measurement group, so a long run shows where it is."""
    print(f"bench: {step}", file=sys.stderr, flush=True)


def print_table(rows: list[Row]) -> None:
    print(f"{'group':9} {'what':46} {'value':>10} {'unit':5} {'ratio':>6}  against / note")
    for row in rows:
        ratio = "" if row.ratio is None else f"{row.ratio:6.2f}"
        tail = " ".join(part for part in (row.against, row.note) if part)
        print(f"{row.group:9} {row.what:46} {row.value:10.1f} {row.unit:5} {ratio:>6}  {tail}")


if __name__ == "__main__":
    main()
