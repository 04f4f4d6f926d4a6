"""Adds KPI facts up into the KPI report, per group of day, channel, team and category (pure).

Adapters fetch the facts of projections/kpis.py for a period and hand them to `build_report`, so
every view store computes the same numbers. Each ratio comes with its numerator and denominator,
so a caller can add groups up (over channels, teams, categories, and over days for everything but
retention, backlog and percentiles, which are not additive).

Which facts each KPI counts, and the day they are filed under:

- answer rate, AHT, bot containment, hand-over rate: contacts, on the contact's day; channel of
  the contact, team of the case when the contact was recorded, category of the case.
- CSAT, NPS, CES: surveys, on the survey's day; channel of the survey, team and category of its
  case ("" for a survey without a case).
- first response time, transfers per case, escalation rate: cases opened in the period, on the
  day opened.
- FCR, resolution time: cases resolved in the period (their last resolution), on that day.
- reopen rate: cases first resolved in the period, on that day; reopened at any time since.
- SLA attainment: cases whose SLA outcome was decided in the period, on that day.
- backlog: cases open at the end of the period, filed under its last day; grouped by day, the
  cases open at the end of each day.
- retention: customers, with "" for channel, team and category; grouped by day, each day is a
  period of its own.

Case KPIs use the channel the case was opened on, its category, and its team at the last
resolution (the current team while it is not resolved). A filter on a dimension excludes facts
without it. Days are UTC days (see projections/kpis.py).

Definitions where DOMAIN.md leaves room:

- answered: picked up by an agent or a bot (not abandoned, not voicemail); handled (AHT): a human
  answered it, any channel or direction.
- FCR: resolved with exactly one inbound contact handled by an agent or supervisor (any outcome),
  no transfer and no outbound contact at all (a callback); a bot session, handed over or not, is
  not a contact with a person of its own.
- bot containment: bot sessions (contacts a bot handled) that the bot resolved; hand-over rate:
  bot sessions handed to a human; both over all bot sessions.
- resolution time: from opening to the last resolution, minus time pending on the customer;
  first response time: from opening to the first human response (0 if the contact started first).
- SLA attainment: a case is decided once a target was breached or fulfilled late (missed), or
  both were fulfilled in time (met); cases without SLA facts are not counted.
- retention: a renewal counts as buying, in the period and in the previous one; merged profiles
  count as their survivor.
- median and p90: nearest rank, i.e. the value at rank ceil(p/100 * n) of the sorted values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from projections.kpi_report import (
    DIMENSIONS,
    Durations,
    HandlingTime,
    KpiGroup,
    KpiQuery,
    KpiReport,
    Mean,
    NetPromoter,
    Ratio,
)
from projections.kpis import CaseFact, ContactFact, PurchaseFact, SurveyFact, inactive_spans
from projections.lineage import survivor_of

PROMOTER, DETRACTOR = 9, 6  # NPS: 9-10 promoters, 0-6 detractors
SATISFIED = 4  # CSAT: 4-5 count as satisfied
Key = tuple[str, str, str, str]


def percentile(values: list[float], p: int) -> float | None:
    """Nearest-rank percentile: the smallest value with at least p% of values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(p * len(ordered) / 100), 1) - 1]


@dataclass
class _Tally:
    """Counters of one group while the facts are added up."""

    offered: int = 0
    answered: int = 0
    resolved: int = 0
    fcr: int = 0
    retained: int = 0
    bought_before: int = 0
    first_response: list[float] = field(default_factory=list)
    resolution: list[float] = field(default_factory=list)
    handled: int = 0
    talk: int = 0
    hold: int = 0
    after_work: int = 0
    satisfied: int = 0
    csat: int = 0
    promoters: int = 0
    passives: int = 0
    detractors: int = 0
    effort: int = 0
    ces: int = 0
    sla_met: int = 0
    sla_decided: int = 0
    opened: int = 0
    transfers: int = 0
    escalated: int = 0
    first_resolved: int = 0
    reopened: int = 0
    backlog: int = 0
    bot_sessions: int = 0
    bot_resolved: int = 0
    handed_over: int = 0

    def group(self, key: Key) -> KpiGroup:
        return KpiGroup(
            *key,
            answer_rate=Ratio(self.answered, self.offered),
            first_contact_resolution=Ratio(self.fcr, self.resolved),
            retention=Ratio(self.retained, self.bought_before),
            first_response_time=_durations(self.first_response),
            resolution_time=_durations(self.resolution),
            average_handling_time=HandlingTime(self.handled, self.talk, self.hold, self.after_work),
            csat=Ratio(self.satisfied, self.csat),
            nps=NetPromoter(self.promoters, self.passives, self.detractors),
            ces=Mean(self.effort, self.ces),
            sla_attainment=Ratio(self.sla_met, self.sla_decided),
            transfers_per_case=Ratio(self.transfers, self.opened),
            reopen_rate=Ratio(self.reopened, self.first_resolved),
            backlog=self.backlog,
            escalation_rate=Ratio(self.escalated, self.opened),
            bot_containment=Ratio(self.bot_resolved, self.bot_sessions),
            hand_over_rate=Ratio(self.handed_over, self.bot_sessions),
        )


def _durations(values: list[float]) -> Durations:
    return Durations(len(values), percentile(values, 50), percentile(values, 90), sum(values))


class _Groups:
    """Files each fact under its group key, dropping facts outside the period or the filters."""

    def __init__(self, query: KpiQuery) -> None:
        self.query = query
        self.since, self.until = query.since.isoformat(), query.until.isoformat()
        self.tallies: dict[Key, _Tally] = {}

    def tally(self, day: str, channel: str, team: str, category: str) -> _Tally | None:
        query = self.query
        if not self.since <= day < self.until:
            return None
        filters = ((query.channel, channel), (query.team, team), (query.category, category))
        if any(wanted and value != wanted for wanted, value in filters):
            return None
        by = query.group_by
        key = (
            day if "day" in by else "",
            channel if "channel" in by else "",
            team if "team" in by else "",
            category if "category" in by else "",
        )
        return self.tallies.setdefault(key, _Tally())


def build_report(
    query: KpiQuery,
    *,
    contacts: Iterable[ContactFact],
    surveys: Iterable[tuple[SurveyFact, str, str]],
    cases: Iterable[CaseFact],
    purchases: Iterable[PurchaseFact],
    merges: Mapping[str, str],
) -> KpiReport:
    """Add the facts up per group.

    `surveys` pairs each survey with its case's team and category ("" without a case);
    `merges` maps each merged-away customer to its survivor, so a customer who bought under two
    merged profiles counts once for retention.
    """
    groups = _Groups(query)
    for contact in contacts:
        _add_contact(groups, contact)
    for survey, team, category in surveys:
        _add_survey(groups, survey, team, category)
    for case in cases:
        _add_case(groups, case)
    _add_retention(groups, purchases, merges)
    if not query.group_by:
        groups.tallies.setdefault(("", "", "", ""), _Tally())
    return KpiReport(
        since=query.since,
        until=query.until,
        group_by=tuple(d for d in DIMENSIONS if d in query.group_by),
        groups=tuple(tally.group(key) for key, tally in sorted(groups.tallies.items())),
    )


def _add_contact(groups: _Groups, contact: ContactFact) -> None:
    tally = groups.tally(contact.day, contact.channel, contact.team, contact.category)
    if tally is None:
        return
    tally.offered += contact.offered
    tally.answered += contact.answered
    tally.bot_sessions += contact.bot_session
    tally.bot_resolved += contact.bot_resolved
    tally.handed_over += contact.handed_over
    if contact.handled:
        tally.handled += 1
        tally.talk += contact.talk_seconds
        tally.hold += contact.hold_seconds
        tally.after_work += contact.after_work_seconds


def _add_survey(groups: _Groups, survey: SurveyFact, team: str, category: str) -> None:
    tally = groups.tally(survey.day, survey.channel, team, category)
    if tally is None:
        return
    if survey.csat is not None:
        tally.csat += 1
        tally.satisfied += survey.csat >= SATISFIED
    if survey.nps is not None:
        tally.promoters += survey.nps >= PROMOTER
        tally.detractors += survey.nps <= DETRACTOR
        tally.passives += DETRACTOR < survey.nps < PROMOTER
    if survey.ces is not None:
        tally.ces += 1
        tally.effort += survey.ces


def _add_case(groups: _Groups, case: CaseFact) -> None:
    dims = (case.channel, case.team, case.category)
    if tally := groups.tally(case.opened_day, *dims):
        tally.opened += 1
        tally.transfers += case.transfers
        tally.escalated += case.escalated
        if case.first_response_seconds is not None:
            tally.first_response.append(case.first_response_seconds)
    if case.resolved_day and (tally := groups.tally(case.resolved_day, *dims)):
        tally.resolved += 1
        tally.fcr += case.fcr
        if case.resolution_seconds is not None:
            tally.resolution.append(case.resolution_seconds)
    if case.first_resolved_day and (tally := groups.tally(case.first_resolved_day, *dims)):
        tally.first_resolved += 1
        tally.reopened += case.reopened
    if (
        case.sla_outcome
        and case.sla_decided_day
        and (tally := groups.tally(case.sla_decided_day, *dims))
    ):
        tally.sla_decided += 1
        tally.sla_met += case.sla_outcome == "met"
    for day in _backlog_days(groups.query, case):
        if tally := groups.tally(day, *dims):
            tally.backlog += 1


def _backlog_days(query: KpiQuery, case: CaseFact) -> list[str]:
    """The days at whose end (00:00 UTC of the next day) the case was open.

    Open at instant E: opened before E and not inside a resolved or closed stretch, i.e. not
    resolved/closed before E unless reopened before E. Without day grouping only the end of
    the period counts, filed under its last day.
    """
    opened = datetime.fromisoformat(case.opened_utc)
    spans = inactive_spans(case.inactive)
    if "day" not in query.group_by:
        end = datetime.combine(query.until, time())
        return (
            [(query.until - timedelta(days=1)).isoformat()] if _open_at(opened, spans, end) else []
        )
    # Open stretches (a, b]: from opening (or a reopening) to the next resolution or closing.
    days: list[str] = []
    starts = [opened, *(end for _, end in spans if end is not None)]
    ends: list[datetime | None] = [start for start, _ in spans]
    if len(ends) < len(starts):
        ends.append(None)
    for a, b in zip(starts, ends, strict=True):
        first = max(a.date(), query.since)
        last = query.until - timedelta(days=1)
        if b is not None:
            last = min(last, b.date() - timedelta(days=1))
        day = first
        while day <= last:
            days.append(day.isoformat())
            day += timedelta(days=1)
    return days


def _open_at(opened: datetime, spans: list[tuple[datetime, datetime | None]], at: datetime) -> bool:
    if opened >= at:
        return False
    return not any(start < at and (end is None or end >= at) for start, end in spans)


def _add_retention(
    groups: _Groups, purchases: Iterable[PurchaseFact], merges: Mapping[str, str]
) -> None:
    """Retained: bought (purchase or renewal) in the period and in the previous one of equal
    length; the base is everyone who bought in the previous period. Grouped by day, each day
    is its own period and the day before it the previous one."""
    query = groups.query
    buyers: dict[str, set[str]] = {}
    for purchase in purchases:
        buyers.setdefault(purchase.day, set()).add(survivor_of(purchase.customer_id, merges))
    if "day" in query.group_by:
        periods = [(d, d - timedelta(days=1), d + timedelta(days=1)) for d in _days(query)]
    else:
        periods = [(query.since, query.previous_since, query.until)]
    for start, previous_start, end in periods:
        before = _bought(buyers, previous_start, start)
        now = _bought(buyers, start, end)
        if before and (tally := groups.tally(start.isoformat(), "", "", "")):
            tally.bought_before += len(before)
            tally.retained += len(before & now)


def _days(query: KpiQuery) -> list[date]:
    return [query.since + timedelta(days=n) for n in range((query.until - query.since).days)]


def _bought(buyers: Mapping[str, set[str]], since: date, until: date) -> set[str]:
    found: set[str] = set()
    day = since
    while day < until:
        found |= buyers.get(day.isoformat(), set())
        day += timedelta(days=1)
    return found
