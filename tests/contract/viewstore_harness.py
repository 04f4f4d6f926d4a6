"""What the view store conformance suite runs on: the adapter's hooks, and views read whole.

`ViewStoreHarness` is the base of every part of the suite (tests/contract/viewstore_contract.py
assembles them); an adapter's test module subclasses `ViewStoreContract`, never this.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings

from projections.catalogue import PROJECTION_NAMES, Batch
from projections.kpi_report import KpiQuery
from projections.store.port import ViewStore
from projections.store.queries import MAX_PAGE_SIZE, EscalationQuery, FollowUpQuery
from tests.contract.viewstore_stories import WEEK
from tests.support import whole_timeline

EVERY_DIMENSION = frozenset({"day", "channel", "team", "category"})


def property_settings(max_examples: int, *, shrink: bool = True) -> settings:
    """The same examples on every run (derandomized), no deadline; each example opens its own
    store through make_store, so the function-scoped fixtures (where stores go, which to close)
    and the adapters' subclasses running one property are safe. Without `shrink` a failure is
    reported as found: shrinking a random history replays it hundreds of times into fresh stores
    and seldom makes it clearer."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
        phases=list(Phase) if shrink else [Phase.explicit, Phase.generate],
    )


def all_views(store: ViewStore, customers: list[str], cases: list[str]) -> dict[str, Any]:
    """Everything the port answers about these customers and cases, to compare stores."""
    return {
        "checkpoints": {name: store.checkpoint(name) for name in PROJECTION_NAMES},
        "timelines": {c: whole_timeline(store, c) for c in customers},
        "members": {c: store.timeline_members(c) for c in customers},
        "cases": {case_id: store.case_view(case_id) for case_id in cases},
        "escalated": store.escalated_cases(EscalationQuery()),
        "follow_ups": store.follow_ups(FollowUpQuery(limit=MAX_PAGE_SIZE)),
        "risk": {c: store.customer_risk(c) for c in customers},
        "kpis": store.kpis(KpiQuery(*WEEK, group_by=EVERY_DIMENSION)),
    }


def chunks(batch: Batch, size: int) -> list[Batch]:
    return [batch[i : i + size] for i in range(0, len(batch), size)]


class ViewStoreHarness(ABC):
    """The hooks an adapter provides, and the stores a test opens through them."""

    @abstractmethod
    def make_store(self) -> ViewStore:
        """A fresh, empty store; each call in one test gives another, independent store."""

    @abstractmethod
    def reopen_store(self, store: ViewStore) -> ViewStore:
        """The data of `store` (closed by the caller) opened again, as a restarted process would."""

    @abstractmethod
    def record_schema_version(self, store: ViewStore, projection: str, version: int) -> None:
        """Record in the open store's data that `projection`'s rows were built under another
        schema version, as if the code had moved on since they were written."""

    @pytest.fixture(autouse=True)
    def _closing(self) -> Iterator[None]:
        self._opened: list[ViewStore] = []
        yield
        for store in self._opened:
            store.close()

    @pytest.fixture
    def store(self, _closing: None) -> ViewStore:
        return self.open_store()

    def open_store(self) -> ViewStore:
        """Another fresh store, closed when the test ends."""
        self._opened.append(self.make_store())
        return self._opened[-1]

    def reopen(self, store: ViewStore) -> ViewStore:
        store.close()
        self._opened.append(self.reopen_store(store))
        return self._opened[-1]

    @contextmanager
    def scratch_store(self) -> Iterator[ViewStore]:
        """A fresh store for one Hypothesis example, closed when the example ends."""
        store = self.make_store()
        try:
            yield store
        finally:
            store.close()
