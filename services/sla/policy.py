"""SLA policy: which targets a case gets, and when they fall due on the business calendar (pure).

Policies are configuration, so they are versioned and read from JSON (`load_policy`); every mistake
in a document is reported as `InvalidInput` naming its JSON path (`targets.vip.high.resolution`).
Any key may be omitted and then takes `DEFAULT_POLICY`'s value, except the days of a week: a week
lists all seven, because guessing a missing day (closed? open all day?) would move deadlines
silently. Unknown keys are errors, so a typo cannot be ignored. Durations are written like "15m",
"4h", "1h30m", "3d" (a "d" is 24 h of business time, not a calendar day; `dump_policy` writes hours
for that reason).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from types import MappingProxyType
from typing import Any, TypeVar

from crm.errors import InvalidInput
from crm.vocabulary import Priority
from services.sla.calendar import BusinessCalendar, WorkingPeriod

_T = TypeVar("_T")
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Targets:
    """How much business time a case may take to its first response and to its resolution."""

    first_response: timedelta
    resolution: timedelta

    def __post_init__(self) -> None:
        for name in ("first_response", "resolution"):
            value: timedelta = getattr(self, name)
            if value <= timedelta(0):
                raise InvalidInput(name, "must be positive")
            if value.microseconds:
                raise InvalidInput(name, "must be a whole number of seconds")
        if self.resolution < self.first_response:
            raise InvalidInput("resolution", "must not be shorter than first_response")


@dataclass(frozen=True)
class SlaPolicy:
    """One version of the SLA rules: targets per priority (tighter for VIPs) on a business calendar.

    Its `standard` and `vip` tables are copied into read-only mappings, so a policy shared by many
    cases cannot be changed under them.
    """

    version: str
    calendar: BusinessCalendar
    standard: Mapping[Priority, Targets]
    vip: Mapping[Priority, Targets]
    at_risk_fraction: float = 0.8
    negative_feedback_window: timedelta = timedelta(days=14)
    """A case reopened within this long of negative feedback it got while resolved escalates
    for that feedback (JSON: "negative_feedback_window", a duration such as "14d")."""

    def __post_init__(self) -> None:
        if not self.version.strip():
            raise InvalidInput("version", "must not be empty")
        for name in ("standard", "vip"):
            table: Mapping[Priority, Targets] = getattr(self, name)
            for priority in Priority:
                if priority not in table:
                    raise InvalidInput(f"{name}.{priority.value}", "missing")
            if len(table) != len(Priority):
                raise InvalidInput(name, "has keys that are not priorities")
            object.__setattr__(self, name, MappingProxyType(dict(table)))
        fraction = self.at_risk_fraction
        if isinstance(fraction, bool) or not 0 < fraction <= 1:
            raise InvalidInput("at_risk_fraction", "must be a number in (0, 1]")
        if self.negative_feedback_window < timedelta(0):
            raise InvalidInput("negative_feedback_window", "must not be negative")

    def targets_for(self, priority: Priority, vip: bool) -> Targets:
        """The targets that apply to a case of this priority for a VIP or other customer."""
        return (self.vip if vip else self.standard)[priority]

    def due(self, start: datetime, target: timedelta) -> datetime:
        """When `target` of business time since `start` is used up: the breach instant."""
        return self.calendar.add(start, target)

    def at_risk(self, start: datetime, target: timedelta) -> datetime:
        """When `at_risk_fraction` of the target is used (to the microsecond): time to escalate."""
        return self.calendar.add(start, target * self.at_risk_fraction)


_DEFAULT_STANDARD = {
    Priority.URGENT: Targets(timedelta(minutes=15), timedelta(hours=4)),
    Priority.HIGH: Targets(timedelta(hours=1), timedelta(hours=8)),
    Priority.NORMAL: Targets(timedelta(hours=4), timedelta(hours=24)),
    Priority.LOW: Targets(timedelta(hours=8), timedelta(hours=72)),
}

DEFAULT_POLICY = SlaPolicy(
    version="default-1",
    calendar=BusinessCalendar.always("UTC"),
    standard=_DEFAULT_STANDARD,
    # VIP customers get half of every standard target (urgent: 7m30s first response, 2 h resolution)
    vip={p: Targets(t.first_response / 2, t.resolution / 2) for p, t in _DEFAULT_STANDARD.items()},
    at_risk_fraction=0.8,
)
"""The targets from DOMAIN.md on a 24/7 UTC calendar; the fallback for anything a document omits."""


# ---------------------------------------------------------------- JSON


_DURATION = re.compile(r"(?:(\d{1,6})d)?(?:(\d{1,7})h)?(?:(\d{1,9})m)?(?:(\d{1,10})s)?", re.ASCII)
_CLOCK = re.compile(r"(\d\d):(\d\d)(?::(\d\d)(?:\.(\d{6}))?)?", re.ASCII)
_DATE = re.compile(r"\d{4}-\d\d-\d\d", re.ASCII)


def load_policy(text: str) -> SlaPolicy:
    """Parse a policy document; anything it omits comes from DEFAULT_POLICY."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput("$", f"not valid JSON: {exc}") from exc
    keys = {"version", "at_risk_fraction", "negative_feedback_window", "calendar", "targets"}
    root = _object(document, "$", keys)
    default = DEFAULT_POLICY
    version = _get(root, "version", "", _string, default.version)
    fraction = _get(root, "at_risk_fraction", "", _fraction, default.at_risk_fraction)
    window = _get(
        root, "negative_feedback_window", "", _parse_duration, default.negative_feedback_window
    )
    calendar = _get(root, "calendar", "", _calendar, default.calendar)
    targets = _object(root.get("targets", {}), "targets", {"standard", "vip"})
    standard = _table(targets.get("standard", {}), "targets.standard", default.standard)
    vip = _table(targets.get("vip", {}), "targets.vip", default.vip)
    with _at("", {"standard": "targets.standard", "vip": "targets.vip"}):
        return SlaPolicy(version, calendar, standard, vip, fraction, window)


def policy_digest(policy: SlaPolicy) -> str:
    """A fingerprint of every rule of the policy: equal digests mean equal rules."""
    return hashlib.sha256(dump_policy(policy).encode()).hexdigest()


def dump_policy(policy: SlaPolicy) -> str:
    """The policy as a readable JSON document that `load_policy` turns back into an equal policy."""
    inline: dict[str, str] = {}

    def compact(value: object) -> str:  # short lists and objects read best on one line
        token = f"\x00{len(inline)}\x00"
        inline[json.dumps(token)] = json.dumps(value, ensure_ascii=False)
        return token

    calendar = policy.calendar
    week = {
        name: compact([[_clock(p.start), _clock(p.end, end=True)] for p in periods])
        for name, periods in zip(_DAY_NAMES, calendar.week, strict=True)
    }
    document = {
        "version": policy.version,
        "at_risk_fraction": policy.at_risk_fraction,
        "negative_feedback_window": _duration_text(policy.negative_feedback_window),
        "calendar": {
            "timezone": calendar.timezone,
            "week": week,
            "holidays": compact([d.isoformat() for d in sorted(calendar.holidays)]),
        },
        "targets": {
            name: {p.value: compact(_targets_document(table[p])) for p in Priority}
            for name, table in (("standard", policy.standard), ("vip", policy.vip))
        },
    }
    text = json.dumps(document, indent=2, ensure_ascii=False)
    for token, rendered in inline.items():
        text = text.replace(token, rendered)
    return text + "\n"


@contextmanager
def _at(path: str, renames: Mapping[str, str] = MappingProxyType({})) -> Iterator[None]:
    """Re-raise a model's InvalidInput under the JSON path of the value it came from."""
    try:
        yield
    except InvalidInput as exc:
        field, message = exc.field, str(exc).removeprefix(f"{exc.field}: ")
        for old, new in renames.items():
            if field == old or field.startswith(f"{old}."):
                field = new + field[len(old) :]
                break
        raise InvalidInput(".".join(part for part in (path, field) if part), message) from exc


def _get(
    parent: Mapping[str, Any], key: str, path: str, parse: Callable[[Any, str], _T], default: _T
) -> _T:
    if key not in parent:
        return default
    return parse(parent[key], f"{path}.{key}" if path else key)


def _object(value: Any, path: str, keys: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(path, "must be an object")
    for key in value:
        if key not in keys:
            raise InvalidInput(f"{path}.{key}" if path != "$" else key, "unknown key")
    return value


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(path, "must be a string")
    return value


def _fraction(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(path, "must be a number")
    return float(value)


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidInput(path, "must be a list")
    return value


def _calendar(value: Any, path: str) -> BusinessCalendar:
    section = _object(value, path, {"timezone", "week", "holidays"})
    default = DEFAULT_POLICY.calendar
    timezone = _get(section, "timezone", path, _string, default.timezone)
    week = _get(section, "week", path, _week, default.week)
    holidays = _get(section, "holidays", path, _holidays, default.holidays)
    renames = {f"week[{i}]": f"week.{name}" for i, name in enumerate(_DAY_NAMES)}
    with _at(path, renames):
        return BusinessCalendar(timezone, week, holidays)


def _week(value: Any, path: str) -> tuple[tuple[WorkingPeriod, ...], ...]:
    section = _object(value, path, set(_DAY_NAMES))
    for name in _DAY_NAMES:
        if name not in section:
            raise InvalidInput(f"{path}.{name}", "missing (a week lists all seven days)")
    return tuple(_day(section[name], f"{path}.{name}") for name in _DAY_NAMES)


def _day(value: Any, path: str) -> tuple[WorkingPeriod, ...]:
    periods = []
    for index, item in enumerate(_list(value, path)):
        where = f"{path}[{index}]"
        pair = _list(item, where)
        if len(pair) != 2:
            raise InvalidInput(where, 'must be ["HH:MM", "HH:MM"]')
        start, end = _parse_clock(pair[0], where, end=False), _parse_clock(pair[1], where, end=True)
        with _at(where, {"start": "", "end": ""}):
            periods.append(WorkingPeriod(start, end))
    return tuple(periods)


def _parse_clock(value: Any, path: str, *, end: bool) -> time:
    match = _CLOCK.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidInput(path, f"{value!r} is not a time of day HH:MM")
    hour, minute, second, micro = (int(g) if g else 0 for g in match.groups())
    if end and (hour, minute, second, micro) == (24, 0, 0, 0):
        return time(0)  # WorkingPeriod's spelling of 24:00
    if hour > 23 or minute > 59 or second > 59:
        raise InvalidInput(path, f"{value!r} is not a time of day (24:00 only as an end)")
    return time(hour, minute, second, micro)


def _clock(value: time, *, end: bool = False) -> str:
    if end and value == time(0):
        return "24:00"
    return value.strftime("%H:%M") if value.second == value.microsecond == 0 else value.isoformat()


def _holidays(value: Any, path: str) -> frozenset[date]:
    days = set()
    for index, item in enumerate(_list(value, path)):
        if not (isinstance(item, str) and _DATE.fullmatch(item)):
            raise InvalidInput(f"{path}[{index}]", "must be a date YYYY-MM-DD")
        try:
            days.add(date.fromisoformat(item))
        except ValueError as exc:
            raise InvalidInput(f"{path}[{index}]", f"{item!r} is not a date") from exc
    return frozenset(days)


def _table(value: Any, path: str, default: Mapping[Priority, Targets]) -> dict[Priority, Targets]:
    section = _object(value, path, {p.value for p in Priority})
    table = {}
    for priority in Priority:
        where = f"{path}.{priority.value}"
        entry = _object(section.get(priority.value, {}), where, {"first_response", "resolution"})
        fallback = default[priority]
        first = _get(entry, "first_response", where, _parse_duration, fallback.first_response)
        resolution = _get(entry, "resolution", where, _parse_duration, fallback.resolution)
        with _at(where):
            table[priority] = Targets(first, resolution)
    return table


def _parse_duration(value: Any, path: str) -> timedelta:
    match = _DURATION.fullmatch(value) if isinstance(value, str) and value else None
    if match is None:
        raise InvalidInput(path, f"{value!r} is not a duration like 15m, 4h, 1h30m or 3d")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    # the regex's digit limits keep the sum far below timedelta's maximum
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _targets_document(targets: Targets) -> dict[str, str]:
    return {
        "first_response": _duration_text(targets.first_response),
        "resolution": _duration_text(targets.resolution),
    }


def _duration_text(value: timedelta) -> str:
    hours, rest = divmod(value // timedelta(seconds=1), 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (seconds, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n) or "0s"
