"""The KPI report: its query and every KPI of DOMAIN.md per group, with the counts behind it.

Each ratio comes with its numerator and denominator so a caller can add groups up (over channels,
teams and categories, and over days for everything but retention, backlog and percentiles, which
are not additive). Which facts each KPI counts and under which day: projections/kpi_tally.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from crm.errors import InvalidInput
from crm.vocabulary import Channel
from services.case.events import Category

DIMENSIONS = ("day", "channel", "team", "category")
MAX_PERIOD_DAYS = 3660


@dataclass(frozen=True)
class KpiQuery:
    """A period of UTC days (since inclusive, until exclusive), grouping and optional filters.

    An empty `group_by` gives one total row; empty filters match everything.
    """

    since: date
    until: date
    group_by: frozenset[str] = frozenset()
    channel: str = ""
    team: str = ""
    category: str = ""

    def __post_init__(self) -> None:
        if self.until <= self.since:
            raise InvalidInput("until", "must be a later day than since")
        if (self.until - self.since).days > MAX_PERIOD_DAYS:
            raise InvalidInput("until", f"the period may span at most {MAX_PERIOD_DAYS} days")
        unknown = self.group_by - set(DIMENSIONS)
        if unknown:
            raise InvalidInput("group_by", f"unknown dimensions {sorted(unknown)}")
        if self.channel and self.channel not in {c.value for c in Channel}:
            raise InvalidInput("channel", f"unknown channel {self.channel!r}")
        if self.category and self.category not in {c.value for c in Category}:
            raise InvalidInput("category", f"unknown category {self.category!r}")

    @property
    def previous_since(self) -> date:
        """Start of the previous period of equal length (retention's baseline)."""
        return self.since - (self.until - self.since)


@dataclass(frozen=True)
class Ratio:
    """numerator / denominator; the value is None when nothing was counted."""

    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        return self.numerator / self.denominator if self.denominator else None


@dataclass(frozen=True)
class Durations:
    """Seconds over `count` cases: nearest-rank median and p90, and the total for means."""

    count: int
    median: float | None
    p90: float | None
    total: float


@dataclass(frozen=True)
class HandlingTime:
    """AHT = (talk + hold + after-contact work) / handled contacts."""

    handled: int
    talk_seconds: int
    hold_seconds: int
    after_work_seconds: int

    @property
    def value(self) -> float | None:
        work = self.talk_seconds + self.hold_seconds + self.after_work_seconds
        return work / self.handled if self.handled else None


@dataclass(frozen=True)
class NetPromoter:
    """NPS = % promoters - % detractors, from -100 to 100."""

    promoters: int
    passives: int
    detractors: int

    @property
    def responses(self) -> int:
        return self.promoters + self.passives + self.detractors

    @property
    def value(self) -> float | None:
        total = self.responses
        return (self.promoters - self.detractors) * 100 / total if total else None


@dataclass(frozen=True)
class Mean:
    """total / count (CES: the mean effort score)."""

    total: int
    count: int

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclass(frozen=True)
class KpiGroup:
    """Every KPI for one combination of the grouped dimensions ("" where not grouped)."""

    day: str
    channel: str
    team: str
    category: str
    answer_rate: Ratio
    first_contact_resolution: Ratio
    retention: Ratio
    first_response_time: Durations
    resolution_time: Durations
    average_handling_time: HandlingTime
    csat: Ratio
    nps: NetPromoter
    ces: Mean
    sla_attainment: Ratio
    transfers_per_case: Ratio
    reopen_rate: Ratio
    backlog: int
    escalation_rate: Ratio
    bot_containment: Ratio
    hand_over_rate: Ratio


@dataclass(frozen=True)
class KpiReport:
    """Groups in order of their dimensions; one total row when nothing is grouped."""

    since: date
    until: date
    group_by: tuple[str, ...]
    groups: tuple[KpiGroup, ...]
