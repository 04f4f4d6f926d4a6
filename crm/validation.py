"""Field checks shared by every domain module: pure, and each error names the offending field."""

from __future__ import annotations

import re

from crm.errors import InvalidInput

MAX_ID = 128
MAX_NAME = 200
MAX_SHORT_TEXT = 500
MAX_LONG_TEXT = 10_000
MAX_SECONDS = 7 * 24 * 3600

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")


def require_id(field: str, value: str) -> str:
    """An identifier: present, short, and safe to put in a stream name."""
    if not value:
        raise InvalidInput(field, "is required")
    if len(value) > MAX_ID:
        raise InvalidInput(field, f"must be at most {MAX_ID} characters")
    if not _ID.fullmatch(value):  # match() would let "$" accept a trailing newline
        raise InvalidInput(
            field,
            "may hold only letters, digits and . _ : @ - and must start with a letter or digit",
        )
    return value


def optional_id(field: str, value: str) -> str:
    """An identifier that may be left empty."""
    return require_id(field, value) if value else ""


def require_text(field: str, value: str, max_length: int) -> str:
    """Free text that must say something."""
    if not value.strip():
        raise InvalidInput(field, "is required")
    return optional_text(field, value, max_length)


def optional_text(field: str, value: str, max_length: int) -> str:
    """Free text that may be empty but not oversized."""
    if len(value) > max_length:
        raise InvalidInput(field, f"must be at most {max_length} characters, got {len(value)}")
    return value


MAX_POSITION = 2**63 - 1
"""The largest global position or count a store can hold (a signed 64-bit integer in SQLite and
PostgreSQL); the protos carry uint64, so a request may name more."""


def require_range(field: str, value: int, low: int, high: int) -> int:
    """A whole number within [low, high]."""
    if not low <= value <= high:
        raise InvalidInput(field, f"must be between {low} and {high}, got {value}")
    return value
