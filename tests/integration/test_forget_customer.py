"""ForgetCustomer end to end over gRPC on the embedded SQLite stores: personal fields read as the
placeholder everywhere, KPIs, timelines and rebuilt views stay exactly as they were, history
still verifies, and no file under the data dir holds any of the customer's personal values."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from bench.server_thread import ServerThread
from crm.personal.cipher import PLACEHOLDER
from crm.settings import Settings
from crm.v1 import (
    audit_service_pb2,
    case_events_pb2,
    case_service_pb2,
    common_pb2,
    customer_events_pb2,
    customer_service_pb2,
    feedback_service_pb2,
    timeline_service_pb2,
)
from projections.runner import rebuild
from projections.store.sqlite import SqliteViewStore
from services.bootstrap import CODEC, System, build_system
from tests.grpc_client import Client

ROOT = Path(__file__).resolve().parents[2]
VERIFY_SCRIPT = ROOT / "deploy" / "verify_export.py"

NAME = "田中 愛子 Forgettable"
ADDRESS = "aiko.forgettable@example.jp"
SUBJECT = "Parcel 77-Forgettable never came"
DESCRIPTION = "Left at the neighbour's, Forgettable-street 5"
NOTE = "called her mobile, she sounded upset (Forgettable)"
COMMENT = "slow and rude, Forgettable"
REVIEW = "ひどい対応 Forgettable-review"
PERSONAL_VALUES = (NAME, ADDRESS, SUBJECT, DESCRIPTION, NOTE, COMMENT, REVIEW)
KEPT_NAME = "Kenji Keeps-his-name"


@dataclass
class Forgotten:
    """A customer with personal data in every kind of record, and what was seen before."""

    system: System
    server: ServerThread
    client: Client
    data_dir: Path
    customer: str
    other: str
    case: str
    survey: str
    review: str
    kpis_before: Any
    timeline_before: list[Any]
    case_view_before: Any
    wrapped_key: bytes


@pytest.fixture(scope="module")
def forgotten(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Forgotten]:
    data_dir = tmp_path_factory.mktemp("forget")
    system = build_system(Settings.defaults(data_dir=data_dir))
    assert system.projector is not None
    system.projector.start()
    server = ServerThread(system)
    client = Client(server.access, prefix="fg")
    try:
        customer = _register(client, NAME, ADDRESS)
        other = _register(client, KEPT_NAME, "kenji@example.com")
        case = client.cases.OpenCase(
            case_service_pb2.OpenCaseRequest(
                context=client.context(),
                customer_id=customer,
                channel=common_pb2.CHANNEL_EMAIL,
                category=case_events_pb2.CATEGORY_SHIPPING_FEES,
                subject=SUBJECT,
                description=DESCRIPTION,
            )
        ).aggregate_id
        client.cases.AddNote(
            case_service_pb2.AddNoteRequest(context=client.context(), case_id=case, text=NOTE)
        )
        survey = client.feedback.SubmitSurvey(
            feedback_service_pb2.SubmitSurveyRequest(
                context=client.context(),
                customer_id=customer,
                case_id=case,
                channel=common_pb2.CHANNEL_EMAIL,
                csat=2,
                nps=3,
                comment=COMMENT,
            )
        ).aggregate_id
        review = client.feedback.SubmitReview(
            feedback_service_pb2.SubmitReviewRequest(
                context=client.context(),
                customer_id=customer,
                rating=1,
                text=REVIEW,
                source="shop page",
            )
        ).aggregate_id
        _settled(system)
        assert client.customers.GetCustomer(_get(customer)).name == NAME  # readable until then
        before = Forgotten(
            system,
            server,
            client,
            data_dir,
            customer,
            other,
            case,
            survey,
            review,
            _kpis(client),
            list(client.whole_timeline(customer)),
            _case_view(client, case),
            _wrapped_key(data_dir, customer),
        )
        forget = client.customers.ForgetCustomer(
            customer_service_pb2.ForgetCustomerRequest(
                context=client.supervisor_context("forget-once"),
                customer_id=customer,
                reason="erasure request, ticket GDPR-2026-17",
            )
        )
        assert not forget.duplicate_request
        _settled(system)
        yield before
    finally:
        client.close()
        server.stop(1)
        system.close()


def _register(client: Client, name: str, address: str) -> str:
    return client.customers.RegisterCustomer(
        customer_service_pb2.RegisterCustomerRequest(
            context=client.context(actor_id="shop", kind=common_pb2.ACTOR_KIND_SYSTEM),
            name=name,
            contact_points=[
                customer_events_pb2.ContactPoint(channel=common_pb2.CHANNEL_EMAIL, address=address)
            ],
            language="ja",
            segment=customer_events_pb2.SEGMENT_B2C,
        )
    ).aggregate_id


def _get(customer_id: str) -> customer_service_pb2.GetCustomerRequest:
    return customer_service_pb2.GetCustomerRequest(customer_id=customer_id)


def _settled(system: System) -> None:
    assert system.projector is not None
    assert system.projector.wait_until(system.store.last_position(), timeout=30)


def _kpis(client: Client) -> timeline_service_pb2.KpiReport:
    today = datetime.now(UTC).date()
    return client.timeline.GetKpis(
        timeline_service_pb2.GetKpisRequest(
            since=(today - timedelta(days=1)).isoformat(),
            until=(today + timedelta(days=1)).isoformat(),
            group_by=[timeline_service_pb2.KPI_DIMENSION_CHANNEL],
        )
    )


def _case_view(client: Client, case_id: str) -> Any:
    return client.timeline.GetCaseView(timeline_service_pb2.GetCaseViewRequest(case_id=case_id))


def _wrapped_key(data_dir: Path, customer_id: str) -> bytes:
    with sqlite3.connect(data_dir / "keys.db") as conn:
        (wrapped,) = conn.execute(
            "SELECT wrapped FROM data_keys WHERE customer_id = ?", (customer_id,)
        ).fetchone()
    return bytes(wrapped)


def test_every_read_shows_the_placeholder_for_the_forgotten_customer(forgotten: Forgotten) -> None:
    client = forgotten.client
    customer = client.customers.GetCustomer(_get(forgotten.customer))
    assert customer.name == PLACEHOLDER
    assert [p.address for p in customer.contact_points] == [PLACEHOLDER]
    assert customer.forgotten and list(customer.forgotten_customer_ids) == [forgotten.customer]
    case = client.cases.GetCase(case_service_pb2.GetCaseRequest(case_id=forgotten.case))
    assert (case.subject, case.description, case.note_count) == (PLACEHOLDER, PLACEHOLDER, 1)
    survey = client.feedback.GetFeedback(
        feedback_service_pb2.GetFeedbackRequest(feedback_id=forgotten.survey)
    )
    assert survey.survey.comment == PLACEHOLDER and survey.survey.csat == 2
    review = client.feedback.GetFeedback(
        feedback_service_pb2.GetFeedbackRequest(feedback_id=forgotten.review)
    )
    assert review.review.text == PLACEHOLDER and review.review.source == "shop page"
    # Another customer's data is untouched.
    assert client.customers.GetCustomer(_get(forgotten.other)).name == KEPT_NAME


def test_the_customer_as_of_a_point_before_the_forget_reads_the_placeholder_too(
    forgotten: Forgotten,
) -> None:
    before = forgotten.timeline_before[-1].global_position
    point = audit_service_pb2.AsOf(global_position=before)

    def as_of(customer_id: str) -> Any:
        return forgotten.client.audit.GetCustomerAsOf(
            audit_service_pb2.GetCustomerAsOfRequest(customer_id=customer_id, as_of=point)
        ).customer

    customer = as_of(forgotten.customer)
    assert customer.name == PLACEHOLDER
    assert [p.address for p in customer.contact_points] == [PLACEHOLDER]
    assert as_of(forgotten.other).name == KEPT_NAME  # opened, not the stored ciphertext


def test_counts_timings_kpis_and_views_stay_exact(forgotten: Forgotten) -> None:
    client = forgotten.client
    assert _kpis(client) == forgotten.kpis_before
    assert _case_view(client, forgotten.case) == forgotten.case_view_before
    timeline = list(client.whole_timeline(forgotten.customer))
    assert timeline[: len(forgotten.timeline_before)] == forgotten.timeline_before
    assert [e.summary for e in timeline[len(forgotten.timeline_before) :]] == [
        "Customer forgotten: personal data of 1 profile erased"
    ]


def test_a_rebuild_after_the_forget_gives_the_same_views(
    forgotten: Forgotten, tmp_path: Path
) -> None:
    fresh = SqliteViewStore(tmp_path / "rebuilt.db")
    try:
        rebuild(forgotten.system.store, fresh, CODEC, batch_size=3)
        live = forgotten.system.view_store
        assert fresh.entries_after(forgotten.customer, -1, 100) == live.entries_after(
            forgotten.customer, -1, 100
        )
    finally:
        fresh.close()
    assert _tables(tmp_path / "rebuilt.db") == _tables(forgotten.data_dir / "views.db")


def test_history_verifies_and_the_export_checks_out_after_the_forget(
    forgotten: Forgotten, tmp_path: Path
) -> None:
    subject = audit_service_pb2.AuditSubject(customer_id=forgotten.customer)
    reply = forgotten.client.audit.VerifyHistory(
        audit_service_pb2.VerifyHistoryRequest(subject=subject)
    )
    assert reply.ok, reply
    lines = [
        line.json
        for line in forgotten.client.audit.ExportHistory(
            audit_service_pb2.ExportHistoryRequest(subject=subject)
        )
    ]
    assert len(lines) == 6  # registered, case, note, survey, review, forgotten
    path = tmp_path / "export.jsonl"
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    checked = subprocess.run(
        [sys.executable, "-I", str(VERIFY_SCRIPT), str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert not _found_in(path.read_bytes())


def test_the_whole_store_verifies_against_a_seal_taken_after_the_forget(
    forgotten: Forgotten,
) -> None:
    system = forgotten.system
    assert system.sealer is not None
    while system.sealer.seal_once() is not None:  # the events since the newest seal, if any
        pass
    reply = forgotten.client.audit.VerifyStore(audit_service_pb2.VerifyStoreRequest())
    assert reply.ok, reply
    assert reply.sealed_events == system.store.last_position() == reply.events_checked


def test_no_file_under_the_data_dir_holds_a_personal_value_or_the_deleted_key(
    forgotten: Forgotten,
) -> None:
    files = [p for p in forgotten.data_dir.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"events.db", "keys.db", "views.db"} <= names
    sealed = b"".join(p.read_bytes() for p in files if p.name.startswith("events.db"))
    assert sealed.count(b"crm-pd1:") >= len(PERSONAL_VALUES)  # the values are there, sealed
    # The scan finds a value wherever it lies in the clear, in either form.
    assert _found_in(json.dumps({"name": NAME}).encode()) == [NAME]
    assert _found_in(json.dumps({"text": REVIEW}, ensure_ascii=False).encode()) == [REVIEW]
    for path in files:
        content = path.read_bytes()
        assert not _found_in(content), f"{path.name} holds a personal value"
        assert forgotten.wrapped_key not in content, f"{path.name} holds the deleted key"


def test_personal_writes_for_a_forgotten_customer_are_refused_and_others_go_on(
    forgotten: Forgotten,
) -> None:
    client = forgotten.client
    last = forgotten.system.store.last_position()
    with pytest.raises(grpc.RpcError) as refused:
        client.cases.AddNote(
            case_service_pb2.AddNoteRequest(
                context=client.context(), case_id=forgotten.case, text="new personal note"
            )
        )
    assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "forgotten" in (refused.value.details() or "")
    assert forgotten.system.store.last_position() == last  # a refused command appends nothing
    purchase = client.customers.RecordPurchase(
        customer_service_pb2.RecordPurchaseRequest(
            context=client.context(actor_id="shop", kind=common_pb2.ACTOR_KIND_SYSTEM),
            customer_id=forgotten.customer,
            order_id="order-after-forget",
            product="Tea",
            amount_minor=500,
            currency="JPY",
        )
    )
    assert purchase.global_position > last


def test_forgetting_again_is_idempotent_by_request_id_and_refused_otherwise(
    forgotten: Forgotten,
) -> None:
    client = forgotten.client

    def forget(request_id: str) -> common_pb2.CommandResult:
        return client.customers.ForgetCustomer(
            customer_service_pb2.ForgetCustomerRequest(
                context=client.supervisor_context(request_id),
                customer_id=forgotten.customer,
                reason="erasure request, ticket GDPR-2026-17",
            )
        )

    assert forget("forget-once").duplicate_request
    with pytest.raises(grpc.RpcError) as again:
        forget("forget-twice")
    assert again.value.code() is grpc.StatusCode.FAILED_PRECONDITION


def test_a_reason_is_required(forgotten: Forgotten) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        forgotten.client.customers.ForgetCustomer(
            customer_service_pb2.ForgetCustomerRequest(
                context=forgotten.client.supervisor_context(), customer_id=forgotten.other
            )
        )
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "reason" in (refused.value.details() or "")


def _found_in(content: bytes) -> list[str]:
    """The personal values `content` holds, as UTF-8 or JSON-escaped (\\uXXXX) text."""
    found = []
    for value in PERSONAL_VALUES:
        forms = {value.encode(), json.dumps(value)[1:-1].encode(), value.encode("utf-16-le")}
        if any(form in content for form in forms):
            found.append(value)
    return found


def _tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            name: conn.execute(f"SELECT * FROM {name} ORDER BY 1, 2").fetchall() for name in names
        }
