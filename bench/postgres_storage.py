"""PostgreSQL event store appends beside plain psycopg inserts of the same rows, in one run.

Starts a throwaway server of its own (deploy/postgres/local_postgres.py, loaded by path since
deploy/ is not a package). The baseline inserts exactly the rows the store writes (the same
columns, table and indexes, one commit each) without any check, hash, lock or request index; the
store's sequential appends pay for all of those, and its appends from 16 threads show what group
commit recovers.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
import uuid
from pathlib import Path
from types import ModuleType

import psycopg

from bench.storage import T0, rate
from crm.envelope import EventMetadata, NewEvent, chain_hash
from crm.eventstore import postgres_schema
from crm.eventstore.port import StreamState
from crm.eventstore.postgres import PostgresEventStore
from crm.vocabulary import Actor, ActorKind
from services.bootstrap import CODEC
from services.case.events import CaseNoteAdded

LOCAL_POSTGRES = Path(__file__).resolve().parents[1] / "deploy" / "postgres" / "local_postgres.py"
THREADS = 16
METADATA = EventMetadata("c-1", T0, Actor(ActorKind.AGENT, "agent-1"), "r", "", "r")


def _local_postgres() -> ModuleType:
    name = "local_postgres"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, LOCAL_POSTGRES)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {LOCAL_POSTGRES}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _event(payload: bytes) -> NewEvent:
    return NewEvent(str(uuid.uuid4()), "crm.case.CaseNoteAdded.v1", payload, METADATA)


def bare_inserts(url: str, payload: bytes, count: int) -> None:
    """The baseline: the rows an append writes, inserted one durable commit each, nothing else."""
    with psycopg.connect(url) as conn:
        postgres_schema.create(conn)
        for i in range(count):
            event = _event(payload)
            content_hash = chain_hash("0" * 64, f"case-{i}", 0, event, T0)
            conn.execute(
                "INSERT INTO events (global_position, stream, revision, event_id, type, data,"
                " metadata, customer_id, recorded_at, previous_hash, content_hash)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    i + 1,
                    f"case-{i}",
                    0,
                    event.event_id,
                    event.type,
                    payload,
                    json.dumps(METADATA.to_dict()),
                    METADATA.customer_id,
                    T0,
                    "0" * 64,
                    content_hash,
                ),
            )
            conn.commit()


def appends(store: PostgresEventStore, payload: bytes, count: int, threads: int) -> None:
    """`count` single-event appends to new streams, spread over `threads` threads."""

    def append_some(first: int) -> None:
        for i in range(first, count, threads):
            store.append(f"case-{i}", [_event(payload)], StreamState.NO_STREAM)

    workers = [threading.Thread(target=append_some, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def measure_postgres_storage(count: int) -> dict[str, float] | None:
    """Events per second of each path; None when PostgreSQL's binaries are not installed."""
    payload = CODEC.encode(CaseNoteAdded("case-1", "n-1", "called back"))[1]
    local_postgres = _local_postgres()
    if local_postgres.find_bindir() is None:
        return None
    with local_postgres.LocalPostgres() as server:
        baseline = rate(count, lambda: bare_inserts(server.create_database("bare"), payload, count))
        figures = {"insert": baseline}
        for name, threads in (("append", 1), ("append_threads", THREADS)):
            figures.update(
                _measure_appends(server.create_database(name), name, payload, count, threads)
            )
    return figures


def _measure_appends(
    url: str, name: str, payload: bytes, count: int, threads: int
) -> dict[str, float]:
    store = PostgresEventStore(url, max_connections=THREADS)
    try:
        per_second = rate(count, lambda: appends(store, payload, count, threads))
        return {name: per_second, f"{name}_transactions": store.commits.transactions}
    finally:
        store.close()
