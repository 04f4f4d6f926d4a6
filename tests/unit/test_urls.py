"""Store URLs as errors and logs may show them: never with a password."""

from __future__ import annotations

import pytest

from crm.urls import without_password


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://crm:pw@db:5432/crm", "postgresql://crm:***@db:5432/crm"),
        ("postgres://a:p:w@@h/d", "postgres://a:***@h/d"),
        ("postgresql://crm@db/crm", "postgresql://crm@db/crm"),
        ("postgresql://db/crm", "postgresql://db/crm"),
        ("sqlite:///var/events.db", "sqlite:///var/events.db"),
        ("events.db", "events.db"),
    ],
)
def test_a_password_is_hidden_and_nothing_else_changes(url: str, shown: str) -> None:
    assert without_password(url) == shown
