"""SLA policy: the defaults, deadlines on a business calendar, and the JSON document's errors."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from crm.errors import InvalidInput
from crm.vocabulary import Priority
from services.sla.calendar import BusinessCalendar, WorkingPeriod
from services.sla.policy import DEFAULT_POLICY, SlaPolicy, Targets, dump_policy, load_policy

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "sla-policy.example.json"
TOKYO = ZoneInfo("Asia/Tokyo")
H = timedelta(hours=1)
M = timedelta(minutes=1)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def tokyo(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=TOKYO)


def with_lunch() -> BusinessCalendar:
    day = (WorkingPeriod(time(9), time(12)), WorkingPeriod(time(13), time(18)))
    return BusinessCalendar(
        "Asia/Tokyo", (day,) * 5 + ((), ()), frozenset({date(2026, 12, 31), date(2027, 1, 1)})
    )


# ---------------------------------------------------------------- defaults


@pytest.mark.parametrize(
    ("priority", "first_response", "resolution"),
    [
        (Priority.URGENT, 15 * M, 4 * H),
        (Priority.HIGH, H, 8 * H),
        (Priority.NORMAL, 4 * H, 24 * H),
        (Priority.LOW, 8 * H, 72 * H),
    ],
)
def test_default_targets_are_those_of_the_domain_and_vips_get_half(
    priority: Priority, first_response: timedelta, resolution: timedelta
) -> None:
    assert DEFAULT_POLICY.targets_for(priority, vip=False) == Targets(first_response, resolution)
    assert DEFAULT_POLICY.targets_for(priority, vip=True) == Targets(
        first_response / 2, resolution / 2
    )


def test_the_default_policy_counts_every_minute_and_warns_at_80_percent() -> None:
    assert DEFAULT_POLICY.version == "default-1"
    assert DEFAULT_POLICY.calendar == BusinessCalendar.always("UTC")
    start = datetime(2026, 11, 14, 23, 0, tzinfo=UTC)  # a Saturday night: still counts
    target = DEFAULT_POLICY.targets_for(Priority.NORMAL, vip=False).first_response
    assert DEFAULT_POLICY.due(start, target) == start + 4 * H
    assert DEFAULT_POLICY.at_risk(start, target) == start + 3 * H + 12 * M  # 80% of 4 h


# ---------------------------------------------------------------- deadlines on business hours


def test_a_normal_case_opened_friday_evening_in_tokyo() -> None:
    policy = replace(DEFAULT_POLICY, calendar=with_lunch())
    targets = policy.targets_for(Priority.NORMAL, vip=False)
    opened = tokyo(2026, 11, 13, 17)  # Friday
    # first response 4 h: Fri 17-18 (1 h) + Mon 09-12 (3 h) -> due at 12:00, when lunch starts
    assert policy.due(opened, targets.first_response) == tokyo(2026, 11, 16, 12)
    # at risk after 3 h 12 min: Fri 17-18 (1 h) + Mon 09:00-11:12 (2 h 12 min)
    assert policy.at_risk(opened, targets.first_response) == tokyo(2026, 11, 16, 11, 12)
    # resolution 24 h: Fri 1 h, Mon 8 h, Tue 8 h (17 h), Wed 09-12 (20 h) and 13-17 (24 h)
    assert policy.due(opened, targets.resolution) == tokyo(2026, 11, 18, 17)


def test_a_vip_case_before_the_new_year_holidays() -> None:
    policy = replace(DEFAULT_POLICY, calendar=with_lunch())
    targets = policy.targets_for(Priority.URGENT, vip=True)  # 7 min 30 s / 2 h
    opened = tokyo(2026, 12, 30, 17, 30)  # Wednesday; Thursday and Friday are holidays
    assert policy.due(opened, targets.first_response) == tokyo(2026, 12, 30, 17, 37, 30)
    # resolution 2 h: Wed 17:30-18:00 (30 min), then Mon 4 Jan 09:00 + 1 h 30 min
    assert policy.due(opened, targets.resolution) == tokyo(2027, 1, 4, 10, 30)


# ---------------------------------------------------------------- the example file and round trips


def test_the_example_file_is_the_tokyo_calendar_with_the_default_targets() -> None:
    policy = load_policy(EXAMPLE.read_text(encoding="utf-8"))
    assert policy == replace(DEFAULT_POLICY, version="2026-11", calendar=with_lunch())


def test_the_example_file_is_written_as_dump_policy_writes_it() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert dump_policy(load_policy(text)) == text


def test_an_empty_document_is_the_default_policy() -> None:
    assert load_policy("{}") == DEFAULT_POLICY


@pytest.mark.parametrize(
    "policy",
    [
        DEFAULT_POLICY,
        replace(DEFAULT_POLICY, calendar=with_lunch(), at_risk_fraction=0.75),
        SlaPolicy(
            version="odd-1",
            calendar=BusinessCalendar(
                "Europe/Berlin",
                ((WorkingPeriod(time(8, 0, 30), time(0)),),) * 7,
                frozenset({date(2026, 3, 29)}),
            ),
            standard={p: Targets(H + 30 * M + 5 * timedelta(seconds=1), 100 * H) for p in Priority},
            vip={p: Targets(M, 2 * H) for p in Priority},
            at_risk_fraction=1,
        ),
    ],
)
def test_dump_and_load_round_trip(policy: SlaPolicy) -> None:
    assert load_policy(dump_policy(policy)) == policy


def doc(**sections: Any) -> str:
    return json.dumps(sections)


def test_missing_sections_fall_back_to_the_defaults() -> None:
    policy = load_policy(
        doc(
            calendar={"timezone": "Asia/Tokyo"},
            targets={"vip": {"high": {"first_response": "20m"}}},
        )
    )
    assert policy.version == DEFAULT_POLICY.version
    assert policy.at_risk_fraction == DEFAULT_POLICY.at_risk_fraction
    assert policy.calendar == BusinessCalendar.always("Asia/Tokyo")
    assert policy.standard == DEFAULT_POLICY.standard
    assert policy.targets_for(Priority.HIGH, vip=True) == Targets(20 * M, 4 * H)
    assert policy.targets_for(Priority.LOW, vip=True) == DEFAULT_POLICY.vip[Priority.LOW]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("15m", 15 * M), ("4h", 4 * H), ("1h30m", 90 * M), ("3d", 72 * H), ("1d2h", 26 * H)],
)
def test_durations(text: str, expected: timedelta) -> None:
    policy = load_policy(doc(targets={"standard": {"low": {"first_response": text}}}))
    assert policy.standard[Priority.LOW].first_response == expected


def test_the_negative_feedback_window_is_14_days_unless_the_document_says() -> None:
    assert DEFAULT_POLICY.negative_feedback_window == timedelta(days=14)
    assert load_policy("{}").negative_feedback_window == timedelta(days=14)
    window = load_policy(doc(negative_feedback_window="3d")).negative_feedback_window
    assert window == timedelta(days=3)
    # 0s: only a reopening at the very instant of the feedback escalates for it
    assert load_policy(doc(negative_feedback_window="0s")).negative_feedback_window == timedelta(0)


def test_a_period_may_end_at_24_00() -> None:
    week: dict[str, list[list[str]]] = {name: [] for name in DAYS[:6]}
    policy = load_policy(doc(calendar={"week": {**week, "sun": [["22:00", "24:00"]]}}))
    assert policy.calendar.week[6] == (WorkingPeriod(time(22), time(0)),)


# ---------------------------------------------------------------- errors name the JSON path


def low_first_response(text: str) -> str:
    return doc(targets={"standard": {"low": {"first_response": text}}})


def week(**days: Any) -> dict[str, Any]:
    return {"week": {name: days.get(name, [["09:00", "18:00"]]) for name in DAYS}}


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("{", "$"),
        ("[]", "$"),
        (doc(versio="x"), "versio"),
        (doc(version=1), "version"),
        (doc(version=" "), "version"),
        (doc(at_risk_fraction=0), "at_risk_fraction"),
        (doc(at_risk_fraction=1.5), "at_risk_fraction"),
        (doc(at_risk_fraction=True), "at_risk_fraction"),
        (doc(at_risk_fraction="0.8"), "at_risk_fraction"),
        ('{"at_risk_fraction": NaN}', "at_risk_fraction"),
        (doc(calendar=[]), "calendar"),
        (doc(calendar={"zone": "UTC"}), "calendar.zone"),
        (doc(calendar={"timezone": "Mars/Olympus_Mons"}), "calendar.timezone"),
        (doc(calendar={"timezone": 9}), "calendar.timezone"),
        (doc(calendar={"week": {d: [] for d in DAYS[:6]}}), "calendar.week.sun"),
        (doc(calendar={"week": {**week()["week"], "sunday": []}}), "calendar.week.sunday"),
        (doc(calendar={"week": {d: [] for d in DAYS}}), "calendar.week"),
        (doc(calendar=week(mon=[["9:00", "18:00"]])), "calendar.week.mon[0]"),
        (doc(calendar=week(mon=[["09:00", "18:00"], ["19:00"]])), "calendar.week.mon[1]"),
        (doc(calendar=week(tue=[["18:00", "09:00"]])), "calendar.week.tue[0]"),
        (doc(calendar=week(tue=[["24:00", "24:00"]])), "calendar.week.tue[0]"),
        (doc(calendar=week(tue=[["09:00", "25:00"]])), "calendar.week.tue[0]"),
        (doc(calendar=week(wed=[["09:00", "12:00"], ["11:00", "13:00"]])), "calendar.week.wed"),
        (doc(calendar=week(thu="09:00-18:00")), "calendar.week.thu"),
        (doc(calendar={"holidays": "2026-12-31"}), "calendar.holidays"),
        (doc(calendar={"holidays": ["2026-12-31", "2026-02-30"]}), "calendar.holidays[1]"),
        (doc(calendar={"holidays": ["2026/12/31"]}), "calendar.holidays[0]"),
        (doc(targets=[]), "targets"),
        (doc(targets={"gold": {}}), "targets.gold"),
        (doc(targets={"standard": {"critical": {}}}), "targets.standard.critical"),
        (doc(targets={"standard": {"urgent": []}}), "targets.standard.urgent"),
        (doc(targets={"vip": {"high": {"resolution": "10m"}}}), "targets.vip.high.resolution"),
        (doc(targets={"vip": {"high": {"resolution": "4 h"}}}), "targets.vip.high.resolution"),
        (doc(targets={"vip": {"high": {"resolution": 4}}}), "targets.vip.high.resolution"),
        (doc(targets={"vip": {"high": {"resolve": "4h"}}}), "targets.vip.high.resolve"),
        (low_first_response("0m"), "targets.standard.low.first_response"),
        (low_first_response(""), "targets.standard.low.first_response"),
        (low_first_response("-1h"), "targets.standard.low.first_response"),
        (doc(negative_feedback_window="2 weeks"), "negative_feedback_window"),
        (doc(negative_feedback_window=14), "negative_feedback_window"),
    ],
)
def test_errors_name_the_json_path(text: str, path: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        load_policy(text)
    assert raised.value.field == path


# ---------------------------------------------------------------- the model's own checks


def test_targets_must_be_positive_whole_seconds_and_resolution_not_before_first_response() -> None:
    for first, resolution, field in [
        (timedelta(0), H, "first_response"),
        (H, -H, "resolution"),
        (H, H + timedelta(microseconds=1), "resolution"),
        (2 * H, H, "resolution"),
    ]:
        with pytest.raises(InvalidInput) as raised:
            Targets(first, resolution)
        assert raised.value.field == field


def test_a_policy_covers_every_priority_and_cannot_be_changed_afterwards() -> None:
    partial = {Priority.URGENT: Targets(M, H)}
    with pytest.raises(InvalidInput) as raised:
        replace(DEFAULT_POLICY, vip=partial)
    assert raised.value.field == "vip.high"
    standard = dict(DEFAULT_POLICY.standard)
    policy = replace(DEFAULT_POLICY, standard=standard)
    standard[Priority.LOW] = Targets(M, M)
    assert policy.standard[Priority.LOW] == DEFAULT_POLICY.standard[Priority.LOW]
    with pytest.raises(TypeError):
        policy.standard[Priority.LOW] = Targets(M, M)  # type: ignore[index]
