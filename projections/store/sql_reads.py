"""The read side both SQL view stores share: each query opens the adapter's read transaction
over the active generations (`_views`) and runs one copy of the query for either dialect."""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractContextManager
from typing import Generic, Protocol, TypeVar

from projections.case_view import CaseView
from projections.follow_ups import FollowUp
from projections.kpi_report import KpiQuery, KpiReport
from projections.risk import CustomerRisk
from projections.store import case_reads, kpi_reads, timeline_reads
from projections.store.dialect import Connection, Dialect
from projections.store.port import ViewStore
from projections.store.queries import EscalationQuery, FollowUpQuery, TimelinePage, TimelineQuery
from projections.timeline import TimelineEntry

C = TypeVar("C", bound=Connection)
C_contra = TypeVar("C_contra", bound=Connection, contravariant=True)


class TimelineModule(Protocol[C_contra]):
    """A dialect's timeline module: the reads that follow its own numbering of writes."""

    DIALECT: Dialect

    def watermark(self, conn: C_contra) -> int: ...

    def writers_after(
        self, conn: C_contra, after_sequence: int, limit: int
    ) -> list[tuple[int, str, str]]: ...

    def entries_applied_after(
        self, conn: C_contra, customer_id: str, after_sequence: int, limit: int
    ) -> tuple[list[TimelineEntry], int]: ...


class CasesModule(Protocol[C_contra]):
    """A dialect's case views module: the escalation list (its JSON and NULL ordering)."""

    def escalated(self, conn: C_contra, query: EscalationQuery) -> list[CaseView]: ...


class RiskModule(Protocol[C_contra]):
    """A dialect's customer risk module (its NULL ordering)."""

    def customer_risk(self, conn: C_contra, customer_id: str) -> CustomerRisk: ...


class SqlViewStore(ViewStore, Generic[C]):
    """A view store's queries, for an adapter that gives `_views` and its dialect's modules."""

    _timeline: TimelineModule[C]
    _cases: CasesModule[C]
    _risk: RiskModule[C]

    @abstractmethod
    def _views(self) -> AbstractContextManager[C]:
        """A read transaction on one snapshot of every projection's active generation."""

    def timeline(self, query: TimelineQuery) -> TimelinePage:
        with self._views() as conn:
            return timeline_reads.page(self._timeline.DIALECT, conn, query)

    def timeline_members(self, customer_id: str) -> frozenset[str]:
        with self._views() as conn:
            return timeline_reads.members(self._timeline.DIALECT, conn, customer_id)

    def entries_after(
        self, customer_id: str, after_position: int, limit: int
    ) -> list[TimelineEntry]:
        with self._views() as conn:
            return timeline_reads.entries_after(
                self._timeline.DIALECT, conn, customer_id, after_position, limit
            )

    def timeline_watermark(self) -> int:
        with self._views() as conn:
            return self._timeline.watermark(conn)

    def writers_after(self, after_sequence: int, limit: int) -> list[tuple[int, str, str]]:
        with self._views() as conn:
            return self._timeline.writers_after(conn, after_sequence, limit)

    def entries_applied_after(
        self, customer_id: str, after_sequence: int, limit: int
    ) -> tuple[list[TimelineEntry], int]:
        with self._views() as conn:
            return self._timeline.entries_applied_after(conn, customer_id, after_sequence, limit)

    def case_view(self, case_id: str) -> CaseView | None:
        with self._views() as conn:
            return case_reads.case_view(self._timeline.DIALECT, conn, case_id, "case_views")

    def escalated_cases(self, query: EscalationQuery) -> list[CaseView]:
        with self._views() as conn:
            return self._cases.escalated(conn, query)

    def follow_ups(self, query: FollowUpQuery) -> list[FollowUp]:
        with self._views() as conn:
            return case_reads.follow_ups(self._timeline.DIALECT, conn, query)

    def customer_risk(self, customer_id: str) -> CustomerRisk:
        with self._views() as conn:
            return self._risk.customer_risk(conn, customer_id)

    def kpis(self, query: KpiQuery) -> KpiReport:
        """Every KPI of the period per group, read from one snapshot of the fact tables."""
        with self._views() as conn:  # every SELECT of it sees the same committed state
            return kpi_reads.read_kpis(self._timeline.DIALECT, conn, query)
