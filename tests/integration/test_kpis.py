"""Every KPI of DOMAIN.md over a hand-computed story, through the real command path and SQLite.

The story runs through the applications (their rules decide the events, including the escalation
an SLA breach triggers) into a real system; the in-process projector builds the read store. The
report for 2026-03-02 .. 2026-03-03 (previous period 02-28 .. 03-01) is asserted number by number
with the arithmetic beside it, then grouped and filtered, rebuilt from event 0, and read over gRPC.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from bench.server_thread import ServerThread
from crm.command_handling import CommandContext
from crm.settings import Settings
from crm.v1 import case_events_pb2, common_pb2, timeline_service_pb2
from crm.vocabulary import Actor, ActorKind, Channel, Direction, Priority
from projections.kpi_report import Durations, KpiGroup, KpiQuery, KpiReport, Ratio
from projections.runner import rebuild
from projections.store.sqlite import SqliteViewStore
from services.bootstrap import CODEC, System, build_system
from services.case.commands import (
    AssignCase,
    CaseCommand,
    CloseCase,
    OpenCase,
    RecordContact,
    ReopenCase,
    ResolveCase,
    ResumeCase,
    SetPendingOnCustomer,
    TransferCase,
)
from services.case.escalation import EscalateCase
from services.case.events import Category, ContactOutcome
from services.case.sla_facts import (
    RecordSlaFact,
    SlaApplied,
    SlaBreached,
    SlaDue,
    SlaFulfilled,
    SlaTarget,
)
from services.customer.commands import (
    CustomerCommand,
    RecordPurchase,
    RecordRenewal,
    RegisterCustomer,
)
from services.customer.events import Segment
from services.feedback.commands import SubmitSurvey
from tests.grpc_client import Client

FIRST, RESOLUTION = SlaTarget.FIRST_RESPONSE, SlaTarget.RESOLUTION
AGENT = Actor(ActorKind.AGENT, "a-1")
BOT = Actor(ActorKind.BOT, "bot-1")
SYSTEM = Actor(ActorKind.SYSTEM, "sla")
SINCE, UNTIL = date(2026, 3, 2), date(2026, 3, 4)
KPI_TABLES = {
    "kpi_contacts": "event_id",
    "kpi_surveys": "feedback_id",
    "kpi_purchases": "event_id",
    "kpi_cases": "case_id",
}
DEADLINE = 10.0


def at(day: int, hour: int, minute: int = 0) -> datetime:
    month = 2 if day > 20 else 3  # 28 is February, 1..4 March
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


@dataclass
class Story:
    """Issues commands through the system's applications, each at a given instant."""

    system: System
    requests: int = 0

    def _context(self, when: datetime, actor: Actor) -> CommandContext:
        self.requests += 1
        return CommandContext(f"kpi-{self.requests}", actor, when)

    def customer(self, when: datetime, command: CustomerCommand) -> None:
        self.system.customers.handle(command, self._context(when, SYSTEM))

    def case(self, when: datetime, command: CaseCommand, actor: Actor = AGENT) -> None:
        self.system.cases.handle(command, self._context(when, actor))

    def sla(self, when: datetime, fact: Any) -> None:
        self.case(when, RecordSlaFact(fact.case_id, fact), SYSTEM)

    def open(
        self, when: datetime, case_id: str, customer: str, channel: Channel, category: str
    ) -> None:
        command = OpenCase(
            case_id, customer, channel, Category(category), Priority.NORMAL, "Help", ""
        )
        self.case(when, command)

    def contact(
        self,
        when: datetime,
        case_id: str,
        channel: Channel,
        direction: Direction = Direction.INBOUND,
        outcome: ContactOutcome = ContactOutcome.ANSWERED,
        seconds: tuple[int, int, int] = (0, 0, 0),
        handler: Actor = AGENT,
    ) -> None:
        talk, hold, after_work = seconds
        command = RecordContact(
            case_id,
            f"ct-{self.requests + 1}",
            channel,
            direction,
            handler.kind,
            handler.id,
            outcome,
            when,
            talk,
            hold,
            after_work,
        )
        self.case(when, command)

    def survey(
        self, when: datetime, customer: str, case_id: str, channel: Channel, *scores: int | None
    ) -> None:
        csat, nps, ces = scores
        command = SubmitSurvey(
            f"fb-{self.requests + 1}", customer, channel, case_id, csat, nps, ces
        )
        self.system.feedback.handle(command, self._context(when, SYSTEM))


def applied(case_id: str, first_due: datetime, resolution_due: datetime) -> SlaApplied:
    dues = (SlaDue(FIRST, first_due, first_due), SlaDue(RESOLUTION, resolution_due, resolution_due))
    return SlaApplied(case_id, "test-1", False, dues, "opened")


def write_story(story: Story) -> None:
    """The story, in the order it happened. Case team = the assigned team ("" if never)."""
    for customer in ("c-1", "c-2", "c-3", "c-4"):
        register = RegisterCustomer(customer, "Kana Ito", (), "ja", Segment.B2C)
        story.customer(at(28, 8), register)
    # Previous period (02-28, 03-01): c-1 and c-2 buy, c-3 renews.
    story.customer(at(28, 10), RecordPurchase("c-1", "o-1", "Plan", 1000, "JPY"))
    story.customer(at(28, 11), RecordRenewal("c-3", "k-1", "Plan"))
    story.customer(at(1, 10), RecordPurchase("c-2", "o-2", "Plan", 1000, "JPY"))
    story.survey(at(1, 12), "c-1", "", Channel.EMAIL, 1, 0, 7)  # before the period: not counted
    story.open(at(1, 15), "E", "c-1", Channel.PHONE, "billing_payment")  # still open at the end

    # Case A (c-1, phone): one answered call, resolved: FCR; both SLA targets met.
    story.open(at(2, 9), "A", "c-1", Channel.PHONE, "billing_payment")
    story.sla(at(2, 9), applied("A", at(2, 13), at(3, 9)))
    story.case(at(2, 9, 1), AssignCase("A", "a-1", "billing-1"))
    story.contact(at(2, 9, 5), "A", Channel.PHONE, seconds=(300, 60, 30))
    story.sla(at(2, 9, 5), SlaFulfilled("A", FIRST, True))
    story.survey(at(2, 9, 10), "c-1", "A", Channel.PHONE, 5, 10, 2)
    story.case(at(2, 9, 20), ResolveCase("A", "fixed"))
    story.sla(at(2, 9, 20), SlaFulfilled("A", RESOLUTION, True))

    # Case B (c-2, chat): abandoned chat, first response breached (escalates), answered chat,
    # assigned to tech-1, transferred, called back, resolved.
    story.open(at(2, 10), "B", "c-2", Channel.CHAT, "technical_trouble")
    story.sla(at(2, 10), applied("B", at(2, 10, 15), at(2, 14)))
    story.contact(at(2, 10), "B", Channel.CHAT, outcome=ContactOutcome.ABANDONED)
    story.sla(at(2, 10, 15), SlaBreached("B", FIRST, at(2, 10, 15)))
    story.contact(at(2, 10, 30), "B", Channel.CHAT, seconds=(600, 0, 60))
    story.sla(at(2, 10, 30), SlaFulfilled("B", FIRST, False))
    story.case(at(2, 10, 31), AssignCase("B", "a-2", "tech-1"))
    story.case(at(2, 10, 40), TransferCase("B", "technical", "needs an engineer"))
    story.open(at(2, 11), "C", "c-3", Channel.EMAIL, "shipping_fees")
    story.contact(at(2, 11, 5), "B", Channel.PHONE, Direction.OUTBOUND, seconds=(120, 0, 30))
    story.case(at(2, 11, 10), AssignCase("C", "a-3", "support-1"))
    story.contact(at(2, 11, 30), "C", Channel.EMAIL, Direction.OUTBOUND, seconds=(0, 0, 120))
    story.case(at(2, 11, 55), ResolveCase("B", "fixed"))
    story.sla(at(2, 11, 55), SlaFulfilled("B", RESOLUTION, True))
    story.case(at(2, 12), SetPendingOnCustomer("C", "waiting for the tracking number"))
    story.survey(at(2, 13), "c-2", "B", Channel.CHAT, 2, 3, 6)
    # Case F (c-2, chat): the bot answers, the case is closed unresolved.
    story.open(at(2, 14), "F", "c-2", Channel.CHAT, "usage_question")
    story.contact(at(2, 14), "F", Channel.CHAT, outcome=ContactOutcome.BOT_RESOLVED, handler=BOT)
    story.case(at(2, 14, 30), CloseCase("F", "the bot answered it"))
    story.customer(at(2, 16), RecordPurchase("c-1", "o-3", "Plan", 1000, "JPY"))

    # Case D (c-4, phone): answered, escalated on request, resolution breached, resolved 03-04.
    story.open(at(3, 9), "D", "c-4", Channel.PHONE, "complaint")
    story.sla(at(3, 9), applied("D", at(3, 10), at(3, 13)))
    story.contact(at(3, 9, 10), "D", Channel.PHONE, seconds=(200, 100, 50))
    story.sla(at(3, 9, 10), SlaFulfilled("D", FIRST, True))
    story.case(at(3, 9, 15), EscalateCase("D", 2, "asked for a manager"))
    story.survey(at(3, 10), "c-4", "", Channel.WEB_FORM, 3, 9, 1)
    story.case(at(3, 12), ResumeCase("C", "tracking number received"))
    story.sla(at(3, 13), SlaBreached("D", RESOLUTION, at(3, 13)))
    story.case(at(3, 13), ResolveCase("C", "sent"))
    story.customer(at(3, 14), RecordRenewal("c-3", "k-1", "Plan"))
    story.case(at(3, 15), ReopenCase("C", "the parcel did not arrive"))
    story.customer(at(3, 15, 30), RecordPurchase("c-4", "o-4", "Plan", 1000, "JPY"))
    story.case(at(3, 16), ResolveCase("C", "resent"))
    story.survey(at(3, 17), "c-3", "C", Channel.EMAIL, 4, 8, None)
    # After the period: D is answered again and resolved.
    story.contact(at(4, 9), "D", Channel.PHONE, seconds=(100, 0, 0))
    story.case(at(4, 9, 30), ResolveCase("D", "apologised"))


@dataclass
class Running:
    system: System
    client: Client
    data_dir: Path


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    data_dir = tmp_path_factory.mktemp("kpis")
    system = build_system(
        Settings.defaults(data_dir=data_dir), clock=lambda: datetime(2026, 3, 10, tzinfo=UTC)
    )
    assert system.projector is not None
    system.projector.start()
    write_story(Story(system))
    assert system.projector.wait_until(system.store.last_position(), DEADLINE)
    server = ServerThread(system)
    client = Client(server.access, prefix="kpi")
    yield Running(system, client, data_dir)
    client.close()
    server.stop(1)
    system.close()


def report(running: Running, **query: Any) -> KpiReport:
    return running.system.view_store.kpis(KpiQuery(SINCE, UNTIL, **query))


def groups_by(running: Running, dimension: str, **query: Any) -> dict[str, KpiGroup]:
    found = report(running, group_by=frozenset({dimension}), **query).groups
    return {getattr(group, dimension): group for group in found}


# ---------------------------------------------------------------- the whole period


def test_every_kpi_of_the_period(running: Running) -> None:
    (total,) = report(running).groups
    assert (total.day, total.channel, total.team, total.category) == ("", "", "", "")

    # Offered: inbound phone and chat. A call (answered), B chat (abandoned), B chat (answered),
    # F chat (bot-resolved: answered), D call (answered) = 4 of 5. D's call on 03-04 is later.
    assert total.answer_rate == Ratio(4, 5)
    # Resolved in the period: A (one call: FCR), B (two chats, transfer, callback), C (no inbound
    # contact at all). D is resolved on 03-04, F closed unresolved.
    assert total.first_contact_resolution == Ratio(1, 3)
    # Bought before (02-28..03-01): c-1, c-2, c-3 (renewal). Again in the period: c-1, c-3.
    assert total.retention == Ratio(2, 3)
    # Opened in the period with a human response: A 5 min, B 30 min (the abandoned chat is no
    # response), C 30 min (outbound e-mail), D 10 min; F had only the bot.
    # Sorted 300, 600, 1800, 1800: median = rank ceil(0.5*4) = 2 -> 600; p90 = rank 4 -> 1800.
    assert total.first_response_time == Durations(4, 600.0, 1800.0, 4500.0)
    # A 09:00 -> 09:20 = 1200 s; B 10:00 -> 11:55 = 6900 s; C opened 03-02 11:00, last resolved
    # 03-03 16:00 = 29 h = 104400 s minus 24 h pending (03-02 12:00 -> 03-03 12:00) = 18000 s.
    # Sorted 1200, 6900, 18000: median = rank 2 -> 6900; p90 = rank ceil(2.7) = 3 -> 18000.
    assert total.resolution_time == Durations(3, 6900.0, 18000.0, 26100.0)
    # Handled (a human answered): A 300+60+30, B chat 600+0+60, B callback 120+0+30,
    # C e-mail 0+0+120, D 200+100+50 -> 1670 s / 5 = 334 s. The abandoned and bot chats are not.
    aht = total.average_handling_time
    assert (aht.handled, aht.talk_seconds, aht.hold_seconds, aht.after_work_seconds) == (
        5,
        1220,
        160,
        290,
    )
    assert aht.value == 334.0
    # CSAT 5, 2, 4, 3 (the 03-01 survey is outside): 4 or 5 = 2 of 4.
    assert total.csat == Ratio(2, 4)
    assert total.csat.value == 0.5
    # NPS 10 and 9 promoters, 8 passive, 3 detractor: (2 - 1) / 4 = +25.
    nps = total.nps
    assert (nps.promoters, nps.passives, nps.detractors, nps.value) == (2, 1, 1, 25.0)
    # CES 2, 6, 1 (the e-mail survey had none): 9 / 3 = 3.
    assert (total.ces.total, total.ces.count, total.ces.value) == (9, 3, 3.0)
    # Decided: A met both (03-02); B breached its first response (03-02); D breached its
    # resolution (03-03). C never had an SLA. 1 of 3.
    assert total.sla_attainment == Ratio(1, 3)
    # Opened in the period: A, B, C, D, F; one transfer (B). 1 / 5.
    assert total.transfers_per_case == Ratio(1, 5)
    # First resolved in the period: A, B, C; C was reopened. 1 of 3.
    assert total.reopen_rate == Ratio(1, 3)
    # Open at 03-04 00:00: D (resolved only on 03-04) and E (opened 03-01). C resolved, F closed.
    assert total.backlog == 2
    # Ever escalated: B (its SLA breach escalated it) and D (on request), of the 5 opened.
    assert total.escalation_rate == Ratio(2, 5)
    assert total.escalation_rate.value == 0.4


def test_grouped_by_day(running: Running) -> None:
    days = groups_by(running, "day")

    assert sorted(days) == ["2026-03-02", "2026-03-03"]
    first, second = days["2026-03-02"], days["2026-03-03"]
    # 03-02: A call, B two chats, F chat -> 3 of 4 answered; 03-03: D's call.
    assert (first.answer_rate, second.answer_rate) == (Ratio(3, 4), Ratio(1, 1))
    # Resolved on 03-02: A (FCR) and B; on 03-03: C.
    assert (first.first_contact_resolution, second.first_contact_resolution) == (
        Ratio(1, 2),
        Ratio(0, 1),
    )
    # 1200, 6900: median = rank 1 -> 1200, p90 = rank 2 -> 6900.
    assert first.resolution_time == Durations(2, 1200.0, 6900.0, 8100.0)
    # End of 03-02: C (pending is open) and E; end of 03-03: D and E.
    assert (first.backlog, second.backlog) == (2, 2)
    # Each day is its own period, the day before it the previous one: 03-01 c-2, 03-02 c-1,
    # 03-03 c-3 and c-4. Nobody bought on two days in a row: 0 of 1 on both days.
    assert (first.retention, second.retention) == (Ratio(0, 1), Ratio(0, 1))
    assert (first.sla_attainment, second.sla_attainment) == (Ratio(1, 2), Ratio(0, 1))


def test_grouped_by_channel_and_filtered_by_team(running: Running) -> None:
    channels = groups_by(running, "channel")

    assert sorted(channels) == ["", "chat", "email", "phone", "web_form"]
    assert channels["phone"].answer_rate == Ratio(2, 2)  # A and D
    assert channels["chat"].answer_rate == Ratio(2, 3)  # B abandoned, B answered, F bot
    assert channels["phone"].escalation_rate == Ratio(1, 2)  # D of A, D (E opened earlier)
    assert channels["phone"].backlog == 2  # D and E were opened on the phone
    assert channels["web_form"].csat == Ratio(0, 1)  # c-4's survey: 3
    assert channels[""].retention == Ratio(2, 3)  # purchases have no channel

    billing = report(running, team="billing-1").groups[0]
    # Only A: its call came after the assignment, its survey names it.
    assert billing.answer_rate == Ratio(1, 1)
    assert billing.first_contact_resolution == Ratio(1, 1)
    assert billing.csat == Ratio(1, 1)
    assert billing.retention == Ratio(0, 0)  # no team on purchases
    teams = groups_by(running, "team")
    assert sorted(teams) == ["", "billing-1", "support-1", "tech-1"]
    tech = teams["tech-1"]  # B's team at its resolution; only the callback came after assigning
    assert (tech.average_handling_time.handled, tech.average_handling_time.value) == (1, 150.0)
    assert (tech.transfers_per_case, tech.sla_attainment) == (Ratio(1, 1), Ratio(0, 1))


def test_filtered_by_category(running: Running) -> None:
    complaint = report(running, category="complaint").groups[0]

    assert complaint.answer_rate == Ratio(1, 1)  # D's call
    assert complaint.escalation_rate == Ratio(1, 1)
    assert complaint.backlog == 1


# ---------------------------------------------------------------- replay


def _rows(path: Path, table: str, key: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY {key}").fetchall()


def test_rebuilding_from_event_zero_gives_the_same_kpi_rows(
    running: Running, tmp_path: Path
) -> None:
    fresh = SqliteViewStore(tmp_path / "rebuilt.db")
    try:
        rebuild(running.system.store, fresh, CODEC, batch_size=7)
        for group_by in (frozenset(), frozenset({"day", "channel", "team", "category"})):
            query = KpiQuery(SINCE, UNTIL, group_by)
            assert fresh.kpis(query) == running.system.view_store.kpis(query)
    finally:
        fresh.close()
    for table, key in KPI_TABLES.items():
        live = _rows(running.data_dir / "views.db", table, key)
        assert live, f"{table} is empty"
        assert _rows(tmp_path / "rebuilt.db", table, key) == live, f"{table} differs"


# ---------------------------------------------------------------- gRPC


def test_get_kpis_over_grpc(running: Running) -> None:
    reply = running.client.timeline.GetKpis(
        timeline_service_pb2.GetKpisRequest(
            since="2026-03-02",
            until="2026-03-04",
            group_by=[timeline_service_pb2.KPI_DIMENSION_CHANNEL],
            category=case_events_pb2.CATEGORY_TECHNICAL_TROUBLE,
        )
    )

    assert (reply.since, reply.until) == ("2026-03-02", "2026-03-04")
    assert list(reply.group_by) == [timeline_service_pb2.KPI_DIMENSION_CHANNEL]
    by_channel = {group.channel: group for group in reply.groups}
    assert sorted(by_channel) == [common_pb2.CHANNEL_PHONE, common_pb2.CHANNEL_CHAT]
    chat = by_channel[common_pb2.CHANNEL_CHAT]  # case B: its chats, its survey, the case itself
    assert chat.category == case_events_pb2.CATEGORY_UNSPECIFIED  # filtered on, not grouped by
    assert (chat.answer_rate.numerator, chat.answer_rate.denominator) == (1, 2)
    assert chat.answer_rate.value == 0.5
    assert (chat.resolution_time.count, chat.resolution_time.median_seconds) == (1, 6900.0)
    assert (chat.nps.detractors, chat.nps.responses, chat.nps.value) == (1, 1, -100.0)
    assert chat.ces.value == 6.0
    assert (chat.sla_attainment.numerator, chat.sla_attainment.denominator) == (0, 1)
    phone = by_channel[common_pb2.CHANNEL_PHONE]  # B's callback
    assert phone.average_handling_time.value_seconds == 150.0
    assert not phone.answer_rate.HasField("value")  # nothing offered
    assert not phone.first_response_time.HasField("median_seconds")


def test_get_kpis_totals_match_the_read_store(running: Running) -> None:
    reply = running.client.timeline.GetKpis(
        timeline_service_pb2.GetKpisRequest(since="2026-03-02", until="2026-03-04")
    )

    (total,) = reply.groups
    assert total.channel == common_pb2.CHANNEL_UNSPECIFIED and total.day == ""
    assert (total.retention.numerator, total.retention.denominator) == (2, 3)
    assert (total.first_response_time.median_seconds, total.first_response_time.p90_seconds) == (
        600.0,
        1800.0,
    )
    assert total.average_handling_time.value_seconds == 334.0
    assert total.backlog == 2
    assert total.escalation_rate.value == 0.4


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"until": "2026-03-04"}, "since"),
        ({"since": "2026-03-02"}, "until"),
        ({"since": "2026/03/02", "until": "2026-03-04"}, "since"),
        ({"since": "2026-02-30", "until": "2026-03-04"}, "since"),
        ({"since": "2026-03-02", "until": "20260304"}, "until"),
        ({"since": "2026-03-04", "until": "2026-03-02"}, "until"),
        ({"since": "2026-03-02", "until": "2026-03-04", "group_by": [0]}, "group_by"),
        ({"since": "2026-03-02", "until": "2026-03-04", "group_by": [99]}, "group_by"),
        ({"since": "2026-03-02", "until": "2026-03-04", "channel": 99}, "channel"),
    ],
)
def test_get_kpis_refuses_bad_requests_naming_the_field(
    running: Running, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        running.client.timeline.GetKpis(timeline_service_pb2.GetKpisRequest(**fields))

    error: Any = raised.value
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"{field}:")


def test_the_case_view_shows_what_the_kpis_count(running: Running) -> None:
    view = running.client.timeline.GetCaseView(timeline_service_pb2.GetCaseViewRequest(case_id="C"))

    kpis = view.kpis
    assert (kpis.inbound_contacts, kpis.outbound_contacts) == (0, 1)
    assert kpis.pending_seconds == 86400.0 and not kpis.HasField("pending_since")
    assert kpis.resolution_seconds == 18000.0
    assert kpis.resolution_team == "support-1"
    assert [span.HasField("end") for span in kpis.inactive] == [True, False]
    assert kpis.first_resolved_at.ToDatetime(tzinfo=UTC) == at(3, 13)
    d = running.client.timeline.GetCaseView(timeline_service_pb2.GetCaseViewRequest(case_id="D"))
    assert list(d.kpis.sla_met) == [case_events_pb2.SLA_TARGET_FIRST_RESPONSE]
    assert list(d.kpis.sla_missed) == [case_events_pb2.SLA_TARGET_RESOLUTION]
    assert d.kpis.ever_escalated and d.escalation_level == 0  # resolved on 03-04: cleared
