"""What the end-to-end tests share: each runs once per event store the server can use."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def event_store_url(request: pytest.FixtureRequest) -> str | None:
    """None for the server's default (an SQLite file in its data dir), or a fresh PostgreSQL
    database on the session's server."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres_url")
    return url
