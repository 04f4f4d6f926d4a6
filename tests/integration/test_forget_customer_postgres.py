"""ForgetCustomer with the event store and the key store on PostgreSQL: the events table holds
only ciphertext for personal fields, no file of the server's data directory holds a personal value,
the key row is gone after the forget, and the history still verifies."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg

from crm.command_handling import CommandContext
from crm.envelope import verify_chain
from crm.personal.cipher import PLACEHOLDER
from crm.settings import Settings
from crm.vocabulary import Actor, ActorKind, Channel, Priority
from services.bootstrap import build_system
from services.case.commands import OpenCase
from services.case.events import Category
from services.customer.commands import ForgetCustomer, RegisterCustomer
from services.customer.events import ContactPoint, Segment
from tests.postgres_server import PostgresServer

NAME = "Pg Forgettable-Suzuki"
ADDRESS = "pg.forgettable@example.jp"
SUBJECT = "Pg-forgettable subject line"
DESCRIPTION = "Pg-forgettable description text"


def _context(request_id: str, kind: ActorKind = ActorKind.SYSTEM) -> CommandContext:
    return CommandContext(request_id, Actor(kind, "pg-test"), datetime.now(UTC))


def test_on_postgresql_only_ciphertext_is_stored_and_a_forget_erases_the_key(
    postgres_server: PostgresServer, postgres_url: str, tmp_path: Path
) -> None:
    settings = Settings.defaults(
        data_dir=tmp_path,
        event_store_url=postgres_url,
        key_store_url=postgres_url,
        in_process_projector=False,
    )
    system = build_system(settings)
    try:
        system.customers.handle(
            RegisterCustomer(
                "pg-c1", NAME, (ContactPoint(Channel.EMAIL, ADDRESS),), "ja", Segment.B2C
            ),
            _context("pg-r1"),
        )
        system.cases.handle(
            OpenCase(
                "pg-case1",
                "pg-c1",
                Channel.EMAIL,
                Category.SHIPPING_FEES,
                Priority.NORMAL,
                SUBJECT,
                DESCRIPTION,
            ),
            _context("pg-r2", ActorKind.AGENT),
        )
        assert system.customers.get("pg-c1").state.name == NAME  # type: ignore[union-attr]
        system.customers.forget(
            ForgetCustomer("pg-c1", "ticket PG-1"), _context("pg-r3", ActorKind.SUPERVISOR)
        )
        case = system.cases.get("pg-case1").state
        assert case is not None and (case.subject, case.description) == (PLACEHOLDER,) * 2
        for stream in ("customer-pg-c1", "case-pg-case1"):
            assert verify_chain(system.store.read_stream(stream)) >= 1
    finally:
        system.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        rows = [bytes(r[0]) for r in conn.execute("SELECT data FROM events").fetchall()]
        keys = conn.execute("SELECT count(*) FROM crm_data_keys WHERE customer_id = 'pg-c1'")
        assert keys.fetchone() == (0,)
        conn.execute("CHECKPOINT")  # every page on disk, so the scan below reads what is stored
    assert len(rows) == 3 and sum(row.count(b"crm-pd1:") for row in rows) == 4
    values = [v.encode() for v in (NAME, ADDRESS, SUBJECT, DESCRIPTION)]
    assert not [v for row in rows for v in values if v in row]
    scanned = 0
    for path in [*Path(postgres_server.directory).rglob("*"), *tmp_path.rglob("*")]:
        if path.is_file():
            content = path.read_bytes()
            scanned += len(content)
            assert not [v for v in values if v in content], path
    assert scanned > 1_000_000  # the server's files were read, not an empty directory
