"""Business-hours calendar: which instants count towards an SLA target, and how many passed (pure).

Working periods are local wall-clock times in the calendar's time zone; business time is the real
time that passes inside them. So 09:00-17:00 is 8 h on every working day whatever the DST state,
while a period that spans a DST change lasts as long as it really does (a 24/7 day in Berlin has
23 h in March and 25 h in October). Wall times that a DST change makes ambiguous count from their
first occurrence; wall times it skips count as the first instant after the gap.

Edge cases, decided once here:
- `add(start, 0)` is `start` itself, even outside working time (nothing has to elapse).
- When the business time runs out exactly at the end of a period, `add` returns that end (e.g. 12:00
  at the start of a lunch break), not the start of the next period: it is the first instant at
  which the duration has elapsed, so `elapsed(start, add(start, d)) == d` holds exactly.
- A start outside working time counts from the next working period.
- Arithmetic is exact to the microsecond; results are aware UTC datetimes.

Days are walked one at a time, and whole weeks without holidays or UTC-offset changes are skipped
arithmetically, so a year of business time costs a few hundred steps, not minutes.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm.errors import InvalidInput

_ZERO = timedelta(0)
_DAY = timedelta(days=1)
_WEEK = timedelta(days=7)
_MIDNIGHT = time(0)

_Interval = tuple[datetime, datetime]


def _time_of_day(value: time) -> timedelta:
    return timedelta(
        hours=value.hour,
        minutes=value.minute,
        seconds=value.second,
        microseconds=value.microsecond,
    )


@dataclass(frozen=True)
class WorkingPeriod:
    """One stretch of working time in a day, in local wall-clock time.

    `end == time(0)` means midnight at the end of the day (24:00), so a period can run to the end of
    the day and `BusinessCalendar.always` can cover every minute.
    """

    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None:
            raise InvalidInput("start", "must be a wall-clock time without tzinfo")
        if self.end.tzinfo is not None:
            raise InvalidInput("end", "must be a wall-clock time without tzinfo")
        if self.end != _MIDNIGHT and self.end <= self.start:
            raise InvalidInput("end", "must be after start (00:00 as an end means 24:00)")

    @property
    def offsets(self) -> tuple[timedelta, timedelta]:
        """Start and end as time since local midnight; the end of a period to 24:00 is one day."""
        end = _DAY if self.end == _MIDNIGHT else _time_of_day(self.end)
        return _time_of_day(self.start), end


@dataclass(frozen=True)
class BusinessCalendar:
    """Time zone, weekly working periods (Monday first) and holidays: which time counts."""

    timezone: str
    week: tuple[tuple[WorkingPeriod, ...], ...]
    holidays: frozenset[date] = frozenset()
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)
    _offsets: tuple[tuple[tuple[timedelta, timedelta], ...], ...] = field(
        init=False, repr=False, compare=False
    )
    _week_length: timedelta = field(init=False, repr=False, compare=False)
    _sorted_holidays: tuple[date, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidInput("timezone", f"unknown time zone {self.timezone!r}") from exc
        if len(self.week) != 7:
            raise InvalidInput("week", f"must have 7 days, Monday first, not {len(self.week)}")
        offsets = tuple(tuple(p.offsets for p in day) for day in self.week)
        for index, day in enumerate(offsets):
            previous_end = _ZERO
            for start, end in day:
                if start < previous_end:
                    raise InvalidInput(f"week[{index}]", "periods must be sorted and not overlap")
                previous_end = end
        week_length = sum((end - start for day in offsets for start, end in day), _ZERO)
        if week_length == _ZERO:
            raise InvalidInput("week", "has no working time")
        if any(isinstance(h, datetime) for h in self.holidays):
            raise InvalidInput("holidays", "must be dates, not datetimes")
        object.__setattr__(self, "_zone", zone)
        object.__setattr__(self, "_offsets", offsets)
        object.__setattr__(self, "_week_length", week_length)
        object.__setattr__(self, "_sorted_holidays", tuple(sorted(self.holidays)))

    @classmethod
    def always(cls, timezone: str = "UTC") -> BusinessCalendar:
        """A 24/7 calendar: every minute counts, so business time is plain elapsed time."""
        whole_day = (WorkingPeriod(_MIDNIGHT, _MIDNIGHT),)
        return cls(timezone, (whole_day,) * 7, frozenset())

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The first instant at which `duration` of business time has elapsed since `start`."""
        begin = _as_utc(start, "start")
        if duration < _ZERO:
            raise InvalidInput("duration", "must not be negative")
        if duration == _ZERO:
            return begin
        remaining = duration
        first_day = begin.astimezone(self._zone).date()
        day = first_day - _DAY  # a fold around midnight can put the previous day's periods later
        while True:
            if day > first_day + _DAY:  # every period from here on lies wholly after `begin`
                while remaining > self._week_length and self._plain_week(day):
                    remaining -= self._week_length
                    day += _WEEK
            for period_start, period_end in self._intervals(day):
                if period_end <= begin:
                    continue
                counted_from = max(period_start, begin)
                available = period_end - counted_from
                if remaining <= available:
                    return counted_from + remaining
                remaining -= available
            day += _DAY

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Business time between two instants; zero when `end` is not after `start`."""
        begin = _as_utc(start, "start")
        finish = _as_utc(end, "end")
        if finish <= begin:
            return _ZERO
        first_day = begin.astimezone(self._zone).date()
        last_day = finish.astimezone(self._zone).date()
        total = _ZERO
        day = first_day - _DAY
        while day <= last_day + _DAY:
            # a week strictly between the two days' neighbours lies wholly inside [begin, finish]
            if first_day + _DAY < day and day + _WEEK < last_day and self._plain_week(day):
                total += self._week_length
                day += _WEEK
                continue
            for period_start, period_end in self._intervals(day):
                overlap = min(period_end, finish) - max(period_start, begin)
                if overlap > _ZERO:
                    total += overlap
            day += _DAY
        return total

    def _intervals(self, day: date) -> tuple[_Interval, ...]:
        """The UTC instants of one local day's working periods; empty on holidays."""
        periods = self._offsets[day.weekday()]
        if not periods or day in self.holidays:
            return ()
        midnight = datetime(day.year, day.month, day.day)
        offset = self._utcoffset(midnight)
        if offset == self._utcoffset(midnight + _DAY):
            # no DST change today: wall time maps to UTC by one fixed offset (the common, fast case)
            base = (midnight - offset).replace(tzinfo=UTC)
            return tuple((base + start, base + end) for start, end in periods)
        intervals = []
        for start, end in periods:
            interval = (self._instant(midnight + start), self._instant(midnight + end))
            if interval[1] > interval[0]:  # a period wholly inside a DST gap never happens
                intervals.append(interval)
        return tuple(intervals)

    def _plain_week(self, day: date) -> bool:
        """Whether the 7 days from `day` last their nominal length (no holiday or DST change)."""
        index = bisect.bisect_left(self._sorted_holidays, day)
        if index < len(self._sorted_holidays) and self._sorted_holidays[index] < day + _WEEK:
            return False
        midnight = datetime(day.year, day.month, day.day)
        offset = self._utcoffset(midnight)
        return all(self._utcoffset(midnight + k * _DAY) == offset for k in range(1, 8))

    def _utcoffset(self, wall: datetime) -> timedelta:
        offset = self._zone.utcoffset(wall)
        assert offset is not None  # a ZoneInfo always knows its offset
        return offset

    def _instant(self, wall: datetime) -> datetime:
        """When local clocks read `wall`: its first occurrence, or the end of the gap it is in."""
        first = wall.replace(tzinfo=self._zone).astimezone(UTC)
        second = wall.replace(tzinfo=self._zone, fold=1).astimezone(UTC)
        if first <= second:
            return first
        # `wall` was skipped: `second` lies before the change and `first` after it; bisect for it
        before, after = second, first
        after_offset = after.astimezone(self._zone).utcoffset()
        while after - before > timedelta(microseconds=1):
            middle = before + (after - before) // 2
            if middle.astimezone(self._zone).utcoffset() == after_offset:
                after = middle
            else:
                before = middle
        return after


def _as_utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(name, "must be timezone-aware")
    return value.astimezone(UTC)
