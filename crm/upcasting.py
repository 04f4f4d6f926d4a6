"""Reading events stored under an older version of their type as the version the code knows now.

A stored event never changes: the hash chain covers its type name and bytes. When an event's
schema changes in a way a default cannot absorb (a field renamed, split, or its meaning changed),
the new class gets the next versioned type name and an upcaster turns a payload of the old
version into one of the new, as plain JSON, each time the event is read. Upcasters chain
(v1 -> v2 -> v3), so every stored version reads as the current class, and each step is written
once, against the version right after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from crm.errors import IntegrityError

Upcast = Callable[[dict[str, Any]], dict[str, Any]]
"""One step: the plain JSON payload of one version, as the next version writes it. It is handed a
freshly parsed payload of its own, so it may change that dict and return it."""


@dataclass(frozen=True)
class Upcaster:
    """How payloads stored as `from_type` become payloads of `to_type`, the next version."""

    from_type: str
    to_type: str
    upcast: Upcast


class UpcastChains:
    """The checked chains from each retired type name to a type name the codec has a class for.

    Built once, when the codec is: a retired name that is also a current class, two upcasters
    from one name, a chain that loops or ends at a name with neither a class nor a further
    upcaster are all refused then (ValueError), never discovered while reading history.
    """

    def __init__(self, upcasters: Iterable[Upcaster], current: Mapping[str, type[Any]]) -> None:
        steps: dict[str, Upcaster] = {}
        for step in upcasters:
            if step.from_type in current:
                raise ValueError(
                    f"{step.from_type} is a current event type; only a retired one is upcast"
                )
            if step.from_type in steps:
                raise ValueError(f"two upcasters from {step.from_type}")
            steps[step.from_type] = step
        self._chains: dict[str, tuple[Upcaster, ...]] = {
            name: _chain(name, steps, current) for name in steps
        }

    @property
    def retired_names(self) -> list[str]:
        """Every stored type name that is read through upcasters."""
        return sorted(self._chains)

    def target(self, type_name: str) -> str | None:
        """The current type name a retired one reads as; None for a name with no upcaster."""
        chain = self._chains.get(type_name)
        return None if chain is None else chain[-1].to_type

    def upcast(self, type_name: str, plain: dict[str, Any]) -> dict[str, Any]:
        """The payload of a retired type as its current type writes it.

        An upcaster that cannot read the payload it is given (a field missing, a value of
        another shape) raises IntegrityError naming the step, as any undecodable event does.
        """
        for step in self._chains[type_name]:
            try:
                upcast = step.upcast(plain)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise IntegrityError(
                    f"a {step.from_type} payload does not upcast to {step.to_type}: "
                    f"{type(exc).__name__} {exc}"
                ) from None
            if not isinstance(upcast, dict):
                raise IntegrityError(f"the upcaster from {step.from_type} returned no JSON object")
            plain = upcast
        return plain


def _chain(
    start: str, steps: Mapping[str, Upcaster], current: Mapping[str, type[Any]]
) -> tuple[Upcaster, ...]:
    """The steps from `start` to a current type name, checked."""
    chain: list[Upcaster] = []
    name = start
    while name not in current:
        step = steps.get(name)
        if step is None:
            raise ValueError(
                f"the upcasters from {start} end at {name}, which is neither a registered "
                "event class nor upcast further"
            )
        if any(seen.from_type == name for seen in chain):
            raise ValueError(f"the upcasters from {start} loop back to {name}")
        chain.append(step)
        name = step.to_type
    return tuple(chain)
