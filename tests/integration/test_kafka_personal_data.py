"""Personal data on the Kafka path: the relay publishes the sealed form, so after a forget no
topic segment holds any of the customer's personal values, and the workers still build exactly
the views a replay builds."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from crm.command_handling import CommandContext
from crm.personal.cipher import PersonalData
from crm.personal.keys import MasterKey
from crm.personal.sqlite_keys import SqliteKeyStore
from crm.vocabulary import Actor, ActorKind, Channel, Priority
from services.bootstrap import Applications, build_applications
from services.case.commands import AddNote, OpenCase
from services.case.events import Category
from services.customer.commands import ForgetCustomer, RegisterCustomer
from services.customer.events import ContactPoint, Segment
from services.feedback.commands import SubmitSurvey
from tests.grpc_client import poll
from tests.integration.test_kafka_path import Deployment

NAME = "Kafka Forgettable-Yamada"
ADDRESS = "kafka.forgettable@example.jp"
SUBJECT = "kafka-forgettable subject"
NOTE = "kafka-forgettable note text"
COMMENT = "kafka-forgettable survey comment"
VALUES = (NAME, ADDRESS, SUBJECT, NOTE, COMMENT)
_requests = itertools.count(1)


@pytest.fixture
def deployment(tmp_path: Path, kafka_broker: Any) -> Iterator[Deployment]:
    deployed = Deployment(tmp_path, kafka_broker.bootstrap)
    yield deployed
    deployed.close()


def _context(kind: ActorKind = ActorKind.AGENT) -> CommandContext:
    return CommandContext(f"kpd-{next(_requests)}", Actor(kind, "kafka-test"), datetime.now(UTC))


def _history(apps: Applications, customer: str) -> None:
    apps.customers.handle(
        RegisterCustomer(
            customer, NAME, (ContactPoint(Channel.EMAIL, ADDRESS),), "ja", Segment.B2C
        ),
        _context(ActorKind.SYSTEM),
    )
    case = f"{customer}-case"
    apps.cases.handle(
        OpenCase(case, customer, Channel.CHAT, Category.USAGE_QUESTION, Priority.HIGH, SUBJECT, ""),
        _context(),
    )
    apps.cases.handle(AddNote(case, f"{case}-note", NOTE), _context())
    apps.feedback.handle(
        SubmitSurvey(f"{customer}-survey", customer, Channel.CHAT, case, csat=1, comment=COMMENT),
        _context(ActorKind.SYSTEM),
    )


def _segments(log_dir: Path, namespace: str) -> list[Path]:
    return [
        path
        for directory in log_dir.iterdir()
        if directory.is_dir() and directory.name.startswith(namespace)
        for path in directory.iterdir()
        if path.is_file()
    ]


def test_topics_carry_only_the_sealed_form_and_views_survive_a_forget(
    deployment: Deployment, kafka_broker: Any, tmp_path: Path
) -> None:
    keys = SqliteKeyStore(tmp_path / "keys.db", MasterKey(bytes(32)))
    personal = PersonalData(keys, digest_key=bytes(range(32)))
    apps = build_applications(deployment.store, lambda: datetime.now(UTC), personal=personal)
    try:
        _history(apps, "kpd-1")
        _history(apps, "kpd-2")
        deployment.relay()
        deployment.workers()
        deployment.assert_live_equals_replay()
        apps.customers.forget(ForgetCustomer("kpd-1", "ticket K-1"), _context(ActorKind.SUPERVISOR))
        for replayed in tmp_path.glob("replayed.db*"):  # the replay is made again, from empty
            replayed.unlink()
        deployment.assert_live_equals_replay()  # the forget's own event, projected like any
        segments = _segments(kafka_broker.log_dir, deployment.namespace)
        logs = [p for p in segments if p.suffix == ".log"]
        assert len(logs) >= 3  # one per topic partition written to, at least
        poll(lambda: b"crm.customer.CustomerForgotten.v1" in b"".join(p.read_bytes() for p in logs))
        content = b"".join(p.read_bytes() for p in segments)
        assert content.count(b"crm-pd1:") >= 2 * len(VALUES)  # the values travel, sealed
        assert not [v for v in VALUES if v.encode() in content]
        assert apps.customers.get("kpd-2").state.name == NAME  # type: ignore[union-attr]
    finally:
        keys.close()
