"""Business calendar edges: periods that start off the minute, and instants that only pretend to
carry a time zone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest

from crm.errors import InvalidInput
from services.sla.calendar import BusinessCalendar, WorkingPeriod

MONDAY = datetime(2026, 11, 16, tzinfo=UTC)


def every_day(period: WorkingPeriod) -> BusinessCalendar:
    return BusinessCalendar("UTC", ((period,),) * 7)


def test_a_period_starting_at_seconds_counts_from_that_second() -> None:
    calendar = every_day(WorkingPeriod(time(9, 0, 30), time(10)))

    assert calendar.elapsed(MONDAY, MONDAY + timedelta(days=1)) == timedelta(seconds=3570)
    assert calendar.add(MONDAY, timedelta(seconds=1)) == MONDAY.replace(hour=9, second=31)


def test_a_period_ending_at_microseconds_ends_at_that_microsecond() -> None:
    calendar = every_day(WorkingPeriod(time(9), time(9, 0, 0, 250)))

    assert calendar.elapsed(MONDAY, MONDAY + timedelta(days=1)) == timedelta(microseconds=250)


class NoOffset(tzinfo):
    """A tzinfo that knows no offset: the datetime it is attached to is naive in all but name."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


def test_an_instant_whose_zone_has_no_offset_is_refused_as_naive() -> None:
    calendar = BusinessCalendar.always()
    pretending = datetime(2026, 11, 16, 9, tzinfo=NoOffset())

    with pytest.raises(InvalidInput) as refused:
        calendar.add(pretending, timedelta(hours=1))

    assert str(refused.value) == "start: must be timezone-aware"


def test_business_time_that_ends_with_a_whole_week_ends_at_that_week_s_last_period() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    nine_to_six = BusinessCalendar(
        "Asia/Tokyo", ((WorkingPeriod(time(9), time(18)),),) * 5 + ((), ())
    )
    monday = datetime(2026, 11, 16, 9, tzinfo=tokyo)

    # Monday and Tuesday (18 h), then exactly one 45-hour week: it ends on the next Tuesday at
    # 18:00, when that period ends, not when the Wednesday after begins.
    due = nine_to_six.add(monday, timedelta(hours=18 + 45))

    assert due == datetime(2026, 11, 24, 18, tzinfo=tokyo)
    assert nine_to_six.elapsed(monday, due) == timedelta(hours=63)


def test_a_negative_duration_is_refused_in_words() -> None:
    with pytest.raises(InvalidInput) as refused:
        BusinessCalendar.always().add(MONDAY, -timedelta(seconds=1))

    assert str(refused.value) == "duration: must not be negative"


MORNING = (WorkingPeriod(time(9), time(12)),)


@pytest.mark.parametrize(
    ("build", "text"),
    [
        (
            lambda: BusinessCalendar("Mars/Olympus_Mons", (MORNING,) * 7),
            "timezone: unknown time zone 'Mars/Olympus_Mons'",
        ),
        (
            lambda: BusinessCalendar("UTC", (MORNING,) * 6),
            "week: must have 7 days, Monday first, not 6",
        ),
        (
            lambda: BusinessCalendar(
                "UTC",
                ((WorkingPeriod(time(9), time(12)), WorkingPeriod(time(11), time(13))),)
                + ((),) * 6,
            ),
            "week[0]: periods must be sorted and not overlap",
        ),
        (lambda: BusinessCalendar("UTC", ((),) * 7), "week: has no working time"),
        (
            lambda: BusinessCalendar("UTC", (MORNING,) * 7, frozenset({MONDAY})),
            "holidays: must be dates, not datetimes",
        ),
    ],
)
def test_a_calendar_that_cannot_be_is_refused_saying_why(
    build: Callable[[], BusinessCalendar], text: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        build()

    assert str(refused.value) == text


def test_elapsed_names_the_naive_bound() -> None:
    calendar = BusinessCalendar.always()

    with pytest.raises(InvalidInput) as refused:
        calendar.elapsed(datetime(2026, 11, 16, 9), MONDAY)

    assert str(refused.value) == "start: must be timezone-aware"
