"""Instants as text that sorts like time, for stores that compare them as strings (pure)."""

from __future__ import annotations

from datetime import UTC, datetime


def sortable_instant(instant: datetime) -> str:
    """Fixed-width UTC text that sorts like the instant (naive instants are taken as UTC).

    Stores keep it beside the original ISO text so range filters compare correctly whatever
    offset each event was recorded with.
    """
    aware = instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)
    return aware.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
