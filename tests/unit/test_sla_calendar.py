"""Business-hours arithmetic: hand-computed deadlines, DST, holidays, and the invariants behind."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from crm.errors import InvalidInput
from services.sla.calendar import BusinessCalendar, WorkingPeriod

TOKYO = ZoneInfo("Asia/Tokyo")
BERLIN = ZoneInfo("Europe/Berlin")
H = timedelta(hours=1)
M = timedelta(minutes=1)


def period(start: str, end: str) -> WorkingPeriod:
    end_time = time(0) if end == "24:00" else time.fromisoformat(end)
    return WorkingPeriod(time.fromisoformat(start), end_time)


def weekdays(*periods: WorkingPeriod) -> tuple[tuple[WorkingPeriod, ...], ...]:
    return (periods,) * 5 + ((), ())


NINE_TO_SIX = BusinessCalendar("Asia/Tokyo", weekdays(period("09:00", "18:00")))
WITH_LUNCH = BusinessCalendar(
    "Asia/Tokyo", weekdays(period("09:00", "12:00"), period("13:00", "18:00"))
)


def tokyo(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=TOKYO)


def berlin(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=BERLIN)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# ---------------------------------------------------------------- hand-computed deadlines

# 2026-11-13 is a Friday, 2026-11-16 the Monday after.


def test_friday_evening_case_is_due_monday_noon() -> None:
    # Fri 17:00-18:00 uses 1 h; the remaining 3 h run Mon 09:00-12:00.
    due = NINE_TO_SIX.add(tokyo(2026, 11, 13, 17), 4 * H)
    assert due == tokyo(2026, 11, 16, 12)
    assert due.tzinfo is UTC


def test_time_used_up_exactly_at_lunch_is_due_when_lunch_starts() -> None:
    # Fri 17-18 is 1 h and Mon 09-12 is 3 h: the 4 h are spent at 12:00 sharp, the period's end,
    # which is the first instant they have elapsed (not 13:00, when work resumes).
    assert WITH_LUNCH.add(tokyo(2026, 11, 13, 17), 4 * H) == tokyo(2026, 11, 16, 12)


def test_time_left_after_the_morning_runs_on_after_lunch() -> None:
    # 1 h on Friday + 3 h Monday morning leave 1 h, counted from 13:00.
    assert WITH_LUNCH.add(tokyo(2026, 11, 13, 17), 5 * H) == tokyo(2026, 11, 16, 14)
    # At-risk point of a 4 h target (80% = 3 h 12 min): 1 h Friday + 2 h 12 min from Mon 09:00.
    assert WITH_LUNCH.add(tokyo(2026, 11, 13, 17), 4 * H * 0.8) == tokyo(2026, 11, 16, 11, 12)


@pytest.mark.parametrize(
    ("start", "duration", "due"),
    [
        (tokyo(2026, 11, 14, 10), H, tokyo(2026, 11, 16, 10)),  # Saturday: counts from Monday
        (tokyo(2026, 11, 16, 7), H, tokyo(2026, 11, 16, 10)),  # before opening
        (tokyo(2026, 11, 16, 12, 30), 30 * M, tokyo(2026, 11, 16, 13, 30)),  # during lunch
        (tokyo(2026, 11, 16, 19), 8 * H, tokyo(2026, 11, 17, 18)),  # after closing: all Tuesday
        (tokyo(2026, 11, 16, 11), 8 * H, tokyo(2026, 11, 17, 11)),  # 1 h + 5 h Monday, 2 h Tuesday
    ],
)
def test_start_outside_working_time_counts_from_the_next_period(
    start: datetime, duration: timedelta, due: datetime
) -> None:
    assert WITH_LUNCH.add(start, duration) == due


def test_zero_duration_is_the_start_itself_even_outside_working_time() -> None:
    saturday = tokyo(2026, 11, 14, 10)
    assert WITH_LUNCH.add(saturday, timedelta(0)) == saturday
    assert WITH_LUNCH.add(saturday, timedelta(0)).tzinfo is UTC


def test_holidays_have_no_working_time() -> None:
    # Thu 2026-12-31 and Fri 2027-01-01 are holidays: Wed 17-18 is 1 h, then Mon 09:00-12:00 3 h.
    calendar = BusinessCalendar(
        "Asia/Tokyo", WITH_LUNCH.week, frozenset({date(2026, 12, 31), date(2027, 1, 1)})
    )
    start = tokyo(2026, 12, 30, 17)
    assert calendar.add(start, 4 * H) == tokyo(2027, 1, 4, 12)
    assert calendar.elapsed(start, tokyo(2027, 1, 4, 9)) == H
    assert calendar.elapsed(tokyo(2026, 12, 31), tokyo(2027, 1, 2)) == timedelta(0)


def test_many_weeks_are_skipped_exactly() -> None:
    # 09-18 on weekdays is 45 h a week: 450 h from Mon 2026-01-05 09:00 is ten weeks, ending Friday
    # 2026-03-13 at 18:00. A holiday on Wed 2026-02-11 (9 h) pushes the end to Mon 2026-03-16 18:00.
    start = tokyo(2026, 1, 5, 9)
    assert NINE_TO_SIX.add(start, 450 * H) == tokyo(2026, 3, 13, 18)
    assert NINE_TO_SIX.elapsed(start, tokyo(2026, 3, 13, 18)) == 450 * H
    with_holiday = BusinessCalendar("Asia/Tokyo", NINE_TO_SIX.week, frozenset({date(2026, 2, 11)}))
    assert with_holiday.add(start, 450 * H) == tokyo(2026, 3, 16, 18)
    # with lunch it is 40 h a week, so 400 h end at the same instant
    assert WITH_LUNCH.add(start, 400 * H) == tokyo(2026, 3, 13, 18)


def test_elapsed_is_zero_when_end_is_not_after_start() -> None:
    start = tokyo(2026, 11, 16, 10)
    assert WITH_LUNCH.elapsed(start, start) == timedelta(0)
    assert WITH_LUNCH.elapsed(start, start - H) == timedelta(0)


def test_elapsed_counts_only_working_time() -> None:
    # Mon 10:00 -> Tue 10:00: 2 h + 5 h on Monday, 1 h on Tuesday.
    assert WITH_LUNCH.elapsed(tokyo(2026, 11, 16, 10), tokyo(2026, 11, 17, 10)) == 8 * H


# ---------------------------------------------------------------- DST


NINE_TO_FIVE_BERLIN = BusinessCalendar("Europe/Berlin", (((period("09:00", "17:00"),),) * 7))


@pytest.mark.parametrize("zone", ["Europe/Berlin", "Asia/Tokyo"])
def test_a_nine_to_five_day_is_eight_hours_every_day_of_the_year(zone: str) -> None:
    calendar = BusinessCalendar(zone, ((period("09:00", "17:00"),),) * 7)
    local = ZoneInfo(zone)
    day = date(2026, 1, 1)
    while day.year == 2026:
        midnight = datetime(day.year, day.month, day.day, tzinfo=local)
        next_midnight = midnight.replace(tzinfo=None) + timedelta(days=1)
        assert calendar.elapsed(midnight, next_midnight.replace(tzinfo=local)) == 8 * H, day
        day += timedelta(days=1)


def test_deadlines_across_the_march_and_october_changes() -> None:
    weekdays_only = BusinessCalendar("Europe/Berlin", weekdays(period("09:00", "17:00")))
    # Fri 27 Mar 09:00 CET + 16 h: all of Friday, all of Monday 30 Mar, now in CEST (UTC+2).
    assert weekdays_only.add(berlin(2026, 3, 27, 9), 16 * H) == utc(2026, 3, 30, 15)
    # Fri 23 Oct 09:00 CEST + 16 h: Monday 26 Oct ends at 17:00 CET (UTC+1).
    assert weekdays_only.add(berlin(2026, 10, 23, 9), 16 * H) == utc(2026, 10, 26, 16)


def test_an_always_on_calendar_counts_the_real_length_of_dst_days() -> None:
    always = BusinessCalendar.always("Europe/Berlin")
    assert always.elapsed(berlin(2026, 3, 29), berlin(2026, 3, 30)) == 23 * H
    assert always.elapsed(berlin(2026, 10, 25), berlin(2026, 10, 26)) == 25 * H
    # 24 h after Sat 28 Mar 12:00 CET is Sun 29 Mar 13:00 CEST
    assert always.add(berlin(2026, 3, 28, 12), 24 * H) == berlin(2026, 3, 29, 13)


def sundays(*periods: WorkingPeriod) -> BusinessCalendar:
    return BusinessCalendar("Europe/Berlin", ((),) * 6 + (periods,))


def test_a_period_spanning_the_change_lasts_as_long_as_it_really_does() -> None:
    early = sundays(period("01:00", "04:00"))
    # 29 Mar: 01:00 CET (00:00 UTC) to 04:00 CEST (02:00 UTC); 25 Oct: 01:00 CEST to 04:00 CET.
    assert early.elapsed(berlin(2026, 3, 29), berlin(2026, 3, 30)) == 2 * H
    assert early.elapsed(berlin(2026, 10, 25), berlin(2026, 10, 26)) == 4 * H


def test_skipped_wall_times_mean_the_end_of_the_gap() -> None:
    # 29 Mar 2026: clocks jump 02:00 CET -> 03:00 CEST (01:00 UTC); 02:30 does not exist and
    # counts as 01:00 UTC. So 01:00-02:30 is 1 h (00:00-01:00 UTC) and 02:30-05:00 is 2 h
    # (01:00-03:00 UTC).
    split = sundays(period("01:00", "02:30"), period("02:30", "05:00"))
    assert split.elapsed(berlin(2026, 3, 29), berlin(2026, 3, 30)) == 3 * H
    assert split.add(berlin(2026, 3, 29), H) == utc(2026, 3, 29, 1)
    assert split.add(berlin(2026, 3, 29), 90 * M) == utc(2026, 3, 29, 1, 30)


def test_ambiguous_wall_times_mean_their_first_occurrence() -> None:
    # 25 Oct 2026: 03:00 CEST -> 02:00 CET (01:00 UTC); 02:30 first occurs at 00:30 UTC, and 03:30
    # CET is 02:30 UTC, so 02:30-03:30 covers 2 h of real time.
    folded = sundays(period("02:30", "03:30"))
    assert folded.elapsed(berlin(2026, 10, 25), berlin(2026, 10, 26)) == 2 * H
    assert folded.add(berlin(2026, 10, 25), H) == utc(2026, 10, 25, 1, 30)


# ---------------------------------------------------------------- validation


def test_validation_names_the_field() -> None:
    day = (period("09:00", "12:00"),)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("timezone", lambda: BusinessCalendar("Mars/Olympus_Mons", (day,) * 7)),
        ("timezone", lambda: BusinessCalendar("", (day,) * 7)),
        ("week", lambda: BusinessCalendar("UTC", (day,) * 6)),
        ("week", lambda: BusinessCalendar("UTC", ((),) * 7)),
        (
            "week[2]",
            lambda: BusinessCalendar(
                "UTC", (day, day, (period("09:00", "12:00"), period("11:00", "13:00"))) + ((),) * 4
            ),
        ),
        (
            "week[0]",
            lambda: BusinessCalendar(
                "UTC", ((period("13:00", "14:00"), period("09:00", "10:00")),) + ((),) * 6
            ),
        ),
        ("end", lambda: WorkingPeriod(time(10), time(9))),
        ("end", lambda: WorkingPeriod(time(10), time(10))),
        ("start", lambda: WorkingPeriod(time(9, tzinfo=UTC), time(10))),
        ("holidays", lambda: BusinessCalendar("UTC", (day,) * 7, frozenset({utc(2026, 1, 1)}))),
        ("start", lambda: NINE_TO_SIX.add(datetime(2026, 1, 1), H)),
        ("duration", lambda: NINE_TO_SIX.add(utc(2026, 1, 1), -M)),
        ("end", lambda: NINE_TO_SIX.elapsed(utc(2026, 1, 1), datetime(2026, 1, 2))),
    ]
    for name, call in cases:
        with pytest.raises(InvalidInput) as raised:
            call()
        assert raised.value.field == name


def test_a_period_may_run_to_midnight_and_periods_may_touch() -> None:
    calendar = BusinessCalendar(
        "UTC", ((period("09:00", "12:00"), period("12:00", "24:00")),) + ((),) * 6
    )
    assert calendar.elapsed(utc(2026, 11, 16), utc(2026, 11, 17)) == 15 * H


# ---------------------------------------------------------------- long spans


def test_a_year_of_business_time_adds_and_measures_back_exactly() -> None:
    # How fast it is belongs to a benchmark, not here; what is checked is that a long span is
    # counted exactly, across daylight-saving changes and holidays.
    calendar = BusinessCalendar(
        "Europe/Berlin",
        weekdays(period("09:00", "12:00"), period("13:00", "18:00")),
        frozenset({date(2026, 12, 25), date(2027, 1, 1), date(2027, 5, 1)}),
    )
    start, year = berlin(2026, 3, 2, 9), timedelta(days=365)
    due = calendar.add(start, year)
    assert calendar.elapsed(start, due) == year


# ---------------------------------------------------------------- properties

ZONES = [
    "UTC",
    "Europe/Berlin",
    "Asia/Tokyo",
    "America/New_York",
    "Australia/Lord_Howe",  # half-hour DST
    "America/Santiago",  # changes at midnight
    "America/Havana",  # changes at midnight
]


def half_hour(index: int) -> time:
    return time(0) if index == 48 else time(index // 2, 30 * (index % 2))


# every half hour of the day, often one of 00:00-03:00 and 24:00, where these zones change clocks
half_hours = st.one_of(st.integers(0, 48), st.sampled_from([0, 1, 2, 3, 4, 5, 6, 48]))


@functools.cache
def transitions(zone: str) -> tuple[datetime, ...]:
    """The instants in 2026 at which the zone's UTC offset changes (found hour by hour)."""
    local, found = ZoneInfo(zone), []
    hour = datetime(2026, 1, 1, tzinfo=UTC)
    while hour.year == 2026:
        if hour.astimezone(local).utcoffset() != (hour + H).astimezone(local).utcoffset():
            found.append(hour + H)
        hour += H
    return tuple(found)


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    week = []
    for _ in range(7):
        cuts = sorted(draw(st.sets(half_hours, max_size=6)))
        cuts = cuts[: len(cuts) // 2 * 2]
        pairs = zip(cuts[::2], cuts[1::2], strict=True)
        week.append(tuple(WorkingPeriod(half_hour(a), half_hour(b)) for a, b in pairs))
    assume(any(week))
    holidays = draw(st.frozensets(st.dates(date(2026, 1, 1), date(2027, 12, 31)), max_size=30))
    return BusinessCalendar(draw(st.sampled_from(ZONES)), tuple(week), holidays)


instants = st.datetimes(
    min_value=datetime(2025, 6, 1),
    max_value=datetime(2028, 6, 1),
    timezones=st.sampled_from([UTC, BERLIN, TOKYO]),
).map(lambda instant: instant.astimezone(UTC))  # so that `+ timedelta` is real, not wall, time
durations = st.one_of(
    st.timedeltas(timedelta(0), timedelta(days=3)),
    st.timedeltas(timedelta(0), timedelta(hours=2000)),
)
spans = st.timedeltas(timedelta(0), timedelta(days=90))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[BusinessCalendar, datetime]:
    """A calendar and a start, half the time within days of one of its zone's DST changes."""
    calendar = draw(calendars())
    near = transitions(calendar.timezone)
    if not near or draw(st.booleans()):
        return calendar, draw(instants)
    around = draw(st.timedeltas(timedelta(days=-4), timedelta(days=1)))
    return calendar, draw(st.sampled_from(near)) + around


PROPERTY = settings(max_examples=200, deadline=None)


@PROPERTY
@given(scenarios(), durations)
def test_elapsed_undoes_add(
    scenario: tuple[BusinessCalendar, datetime], duration: timedelta
) -> None:
    calendar, start = scenario
    assert calendar.elapsed(start, calendar.add(start, duration)) == duration


@PROPERTY
@given(scenarios(), durations, durations)
def test_add_is_monotonic(
    scenario: tuple[BusinessCalendar, datetime], a: timedelta, b: timedelta
) -> None:
    calendar, start = scenario
    shorter, longer = sorted((a, b))
    assert start <= calendar.add(start, shorter) <= calendar.add(start, longer)


@PROPERTY
@given(scenarios(), spans, spans)
def test_elapsed_is_additive(
    scenario: tuple[BusinessCalendar, datetime], to_b: timedelta, to_c: timedelta
) -> None:
    calendar, a = scenario
    b, c = a + to_b, a + to_b + to_c
    assert calendar.elapsed(a, c) == calendar.elapsed(a, b) + calendar.elapsed(b, c)


@PROPERTY
@given(st.sampled_from(ZONES), instants, durations)
def test_always_on_business_time_is_real_time(zone: str, start: datetime, d: timedelta) -> None:
    assert BusinessCalendar.always(zone).add(start, d) == start + d


def reference_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """Independent model: a wall time's first occurrence, or the first existing minute after it."""
    while (wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone)).replace(tzinfo=None) != wall:
        wall += M  # skipped by a DST change (every zone here changes on a whole minute)
    return wall.replace(tzinfo=zone).astimezone(UTC)


def reference_elapsed(calendar: BusinessCalendar, start: datetime, end: datetime) -> timedelta:
    zone, total = ZoneInfo(calendar.timezone), timedelta(0)
    day = start.astimezone(zone).date() - timedelta(days=1)
    while day <= end.astimezone(zone).date() + timedelta(days=1):
        midnight = datetime(day.year, day.month, day.day)
        for p in calendar.week[day.weekday()] if day not in calendar.holidays else ():
            to_end = (
                timedelta(days=1) if p.end == time(0) else datetime.combine(day, p.end) - midnight
            )
            a = reference_instant(datetime.combine(day, p.start), zone)
            b = reference_instant(midnight + to_end, zone)
            total += max(timedelta(0), min(b, end) - max(a, start))
        day += timedelta(days=1)
    return total


@PROPERTY
@given(scenarios(), spans)
def test_elapsed_matches_a_day_by_day_reference(
    scenario: tuple[BusinessCalendar, datetime], span: timedelta
) -> None:
    calendar, start = scenario
    assert calendar.elapsed(start, start + span) == reference_elapsed(calendar, start, start + span)
