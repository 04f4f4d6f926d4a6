"""Fixtures shared by every test tier; the Kafka broker and PostgreSQL live in plugin modules."""

import os

import pytest
from hypothesis import settings

pytest_plugins = ["tests.kafka_broker", "tests.postgres_server"]

# `make mutate` runs the tests in-process under mutmut, which sets this variable.
UNDER_MUTMUT = "MUTANT_UNDER_TEST" in os.environ

if UNDER_MUTMUT:
    # A mutant runs slower through mutmut's trampolines, and a verdict must not depend on the
    # examples drawn: no deadline, the same examples every run.
    settings.register_profile("mutmut", deadline=None, derandomize=True)
    settings.load_profile("mutmut")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """mutmut 3.7 reads `item._nodeid`, which pytest 9 no longer has; give it the public one."""
    if UNDER_MUTMUT:
        for item in items:
            item._nodeid = item.nodeid  # type: ignore[attr-defined]
