"""One setting: its flag, environment variable, default, parser and help, and the errors a wrong
value raises; with the parsers several groups of settings share.

The settings themselves are declared in crm.settings (and crm.security_settings): this module
holds only what declaring one takes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from crm.errors import CrmError

T = TypeVar("T")

DATA_DIR_MARK = "<data-dir>"
_DIGITS = re.compile(r"[0-9]{1,5}")


class StartupError(CrmError):
    """A process cannot start as configured; the message says what to change."""


class SettingError(StartupError):
    """A setting's value is wrong; the message names its flag and environment variable."""

    def __init__(self, setting: Setting[Any], problem: str) -> None:
        super().__init__(f"{setting.label}: {problem}")
        self.setting = setting
        self.problem = problem


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One setting: where its value comes from and how it is checked."""

    name: str  # the field of `Settings`
    flag: str
    env: str
    default: str  # text parsed like a given value; may name DATA_DIR_MARK
    parse: Callable[[str], T]  # raises ValueError saying what is wrong and what to give instead
    help: str
    metavar: str

    @property
    def label(self) -> str:
        return f"{self.flag} / {self.env}"

    def value(self, text: str) -> T:
        try:
            return self.parse(text)
        except ValueError as exc:
            raise SettingError(self, str(exc)) from None


# Parsers: each takes the text given and returns the value, or raises ValueError.


def parse_text(text: str) -> str:
    return text


def parse_choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"{text!r} is not one of {', '.join(choices)}")
        return text

    return parse


def parse_whole(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number; give one >= {minimum}") from None
        if number < minimum:
            raise ValueError(f"{number} is too small; give a whole number >= {minimum}")
        return number

    return parse


def parse_seconds(minimum: float, *, inclusive: bool) -> Callable[[str], float]:
    bound = f">= {minimum:g}" if inclusive else f"> {minimum:g}"

    def parse(text: str) -> float:
        try:
            seconds = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number of seconds; give one {bound}") from None
        within = seconds >= minimum if inclusive else seconds > minimum
        if not (within and math.isfinite(seconds)):
            raise ValueError(f"{text!r} is out of range; give a number of seconds {bound}")
        return seconds

    return parse


def parse_address(text: str) -> str:
    """`host:port`, an IPv6 host in brackets; port 0 asks for a free one."""
    host, _, port = text.rpartition(":")
    example = "give host:port, e.g. 127.0.0.1:50051 or [::]:50051"
    if not host or not _DIGITS.fullmatch(port) or int(port) > 65535 or re.search(r"\s", text):
        raise ValueError(f"{text!r} is not an address; {example}")
    if ":" in host and not (host.startswith("[") and host.endswith("]")):
        raise ValueError(f"{text!r} has an IPv6 host without brackets; {example}")
    return text


def parse_optional_address(text: str) -> str:
    """An address as `parse_address` takes it, or empty for none."""
    return parse_address(text) if text.strip() else ""


def parse_port(text: str) -> int:
    if not _DIGITS.fullmatch(text) or int(text) > 65535:
        raise ValueError(f"{text!r} is not a port; give a whole number from 0 to 65535")
    return int(text)


def parse_brokers(text: str) -> str:
    """A comma-separated list of Kafka brokers, each `host:port`."""
    for broker in text.split(","):
        try:
            parse_address(broker.strip())
        except ValueError:
            raise ValueError(
                f"{broker.strip()!r} is not a broker address; give host:port[,host:port...]"
            ) from None
    return text


def parse_namespace(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9._-]*", text):
        raise ValueError(
            f"{text!r} has characters Kafka topic names cannot hold; use A-Z a-z 0-9 . _ -"
        )
    return text


def parse_directory(text: str) -> Path:
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{text!r} exists and is not a directory; give a directory")
    return path


def parse_instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO-8601 instant; give e.g. 2000-01-01T00:00Z"
        ) from None
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; give e.g. 2000-01-01T00:00Z")
    return value


def parse_optional_file(text: str) -> Path | None:
    if not text:
        return None
    path = Path(text)
    if not path.is_file():
        raise ValueError(f"no file {text!r}; give the path of a JSON file, or nothing")
    return path
