"""The SLA policy document in detail: every error in its own words, the edges of a time of day,
and how `dump_policy` writes midnight, zero durations and text beyond ASCII.

An operator fixes a policy file from these messages alone, so they are part of its interface.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import time, timedelta
from typing import Any

import pytest

from crm.errors import InvalidInput
from services.sla.calendar import BusinessCalendar, WorkingPeriod
from services.sla.policy import DEFAULT_POLICY, dump_policy, load_policy

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def doc(**sections: Any) -> str:
    return json.dumps(sections)


def week(**days: Any) -> dict[str, Any]:
    return {"week": {name: days.get(name, [["09:00", "18:00"]]) for name in DAYS}}


def monday(start: str, end: str) -> WorkingPeriod:
    """The Monday period a document with one period on every day gives."""
    every_day = {"week": {name: [[start, end]] for name in DAYS}}
    (period,) = load_policy(doc(calendar=every_day)).calendar.week[0]
    return period


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "$: must be an object"),
        (doc(versio="x"), "versio: unknown key"),
        (doc(calendar={"zone": "UTC"}), "calendar.zone: unknown key"),
        (doc(version=1), "version: must be a string"),
        (doc(at_risk_fraction="0.8"), "at_risk_fraction: must be a number"),
        (
            doc(calendar={"week": {d: [] for d in DAYS[:6]}}),
            "calendar.week.sun: missing (a week lists all seven days)",
        ),
        (doc(calendar=week(thu="09:00-18:00")), "calendar.week.thu: must be a list"),
        (doc(calendar=week(mon=["09:00-18:00"])), "calendar.week.mon[0]: must be a list"),
        (
            doc(calendar=week(mon=[["09:00", "18:00"], ["19:00"]])),
            'calendar.week.mon[1]: must be ["HH:MM", "HH:MM"]',
        ),
        (
            doc(calendar=week(mon=[["9:00", "18:00"]])),
            "calendar.week.mon[0]: '9:00' is not a time of day HH:MM",
        ),
        (
            doc(calendar=week(tue=[["09:00", "25:00"]])),
            "calendar.week.tue[0]: '25:00' is not a time of day (24:00 only as an end)",
        ),
        (
            doc(calendar=week(tue=[["09:00", "09:60"]])),
            "calendar.week.tue[0]: '09:60' is not a time of day (24:00 only as an end)",
        ),
        (
            doc(calendar=week(tue=[["09:00:60", "10:00"]])),
            "calendar.week.tue[0]: '09:00:60' is not a time of day (24:00 only as an end)",
        ),
        (doc(calendar={"holidays": [20261231]}), "calendar.holidays[0]: must be a date YYYY-MM-DD"),
        (
            doc(calendar={"holidays": ["2026/12/31"]}),
            "calendar.holidays[0]: must be a date YYYY-MM-DD",
        ),
        (
            doc(calendar={"holidays": ["2026-02-30"]}),
            "calendar.holidays[0]: '2026-02-30' is not a date",
        ),
        (
            doc(targets={"vip": {"high": {"resolution": "4 h"}}}),
            "targets.vip.high.resolution: '4 h' is not a duration like 15m, 4h, 1h30m or 3d",
        ),
    ],
)
def test_each_error_names_the_path_and_says_what_is_expected(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        load_policy(text)

    assert str(raised.value) == message


def test_a_document_that_is_no_json_is_refused_quoting_the_parser() -> None:
    with pytest.raises(InvalidInput) as raised:
        load_policy("{")

    assert str(raised.value).startswith("$: not valid JSON: Expecting property name")


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("23:00", "23:59", WorkingPeriod(time(23), time(23, 59))),
        ("09:00:59", "10:00", WorkingPeriod(time(9, 0, 59), time(10))),
        ("09:00:00.500000", "10:00", WorkingPeriod(time(9, 0, 0, 500_000), time(10))),
        ("00:00", "24:00", WorkingPeriod(time(0), time(0))),
    ],
)
def test_times_of_day_up_to_their_last_minute_second_and_microsecond_are_read(
    start: str, end: str, expected: WorkingPeriod
) -> None:
    assert monday(start, end) == expected


def test_a_period_to_midnight_is_written_as_24_00_and_read_back() -> None:
    to_midnight = ((WorkingPeriod(time(22), time(0)),),) * 7
    policy = replace(DEFAULT_POLICY, calendar=BusinessCalendar("UTC", to_midnight))

    text = dump_policy(policy)

    assert '"mon": [["22:00", "24:00"]]' in text
    assert load_policy(text) == policy


def test_a_zero_window_is_written_as_0s_and_read_back() -> None:
    policy = replace(DEFAULT_POLICY, negative_feedback_window=timedelta(0))

    text = dump_policy(policy)

    assert '"negative_feedback_window": "0s"' in text
    assert load_policy(text) == policy


def test_text_beyond_ascii_is_written_as_it_reads() -> None:
    policy = replace(
        DEFAULT_POLICY,
        version="東京-2026",
        calendar=BusinessCalendar("Asia/Tokyo", ((WorkingPeriod(time(9), time(18)),),) * 7),
    )

    text = dump_policy(policy)

    assert '"version": "東京-2026"' in text
    assert load_policy(text) == policy
