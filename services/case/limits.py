"""How much each agent may grant without a supervisor, from configuration."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from crm.errors import InvalidInput


@dataclass(frozen=True)
class CompensationLimits:
    """A default limit for every agent, and personal limits for some, in one currency."""

    currency: str = "JPY"
    default_minor: int = 10_000
    agents: Mapping[str, int] = field(default_factory=dict)

    def for_agent(self, agent_id: str) -> int:
        return self.agents.get(agent_id, self.default_minor)


def load_limits(text: str) -> CompensationLimits:
    """Parse {"currency": "JPY", "default_minor": 10000, "agents": {"agent-7": 30000}}."""
    try:
        raw: Any = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInput("compensation_limits", f"not JSON: {error}") from None
    if not isinstance(raw, dict):
        raise InvalidInput("compensation_limits", "must be a JSON object")
    defaults = CompensationLimits()
    currency = raw.get("currency", defaults.currency)
    default_minor = raw.get("default_minor", defaults.default_minor)
    agents = raw.get("agents", {})
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isupper()):
        raise InvalidInput("compensation_limits.currency", "must be an ISO 4217 code")
    if not isinstance(default_minor, int) or default_minor < 0:
        raise InvalidInput("compensation_limits.default_minor", "must be a whole number >= 0")
    if not isinstance(agents, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and v >= 0 for k, v in agents.items()
    ):
        raise InvalidInput("compensation_limits.agents", "must map agent ids to whole numbers")
    return CompensationLimits(currency, default_minor, dict(agents))
