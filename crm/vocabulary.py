"""Value types every part of the system speaks: channels, directions, priorities, actors.

Pure (stdlib only), so the domain modules may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Channel(Enum):
    """Where a contact or feedback happened."""

    PHONE = "phone"
    EMAIL = "email"
    CHAT = "chat"
    SOCIAL = "social"
    WEB_FORM = "web_form"
    SELF_SERVICE = "self_service"
    CHATBOT = "chatbot"
    IVR = "ivr"
    IN_PERSON = "in_person"


class Direction(Enum):
    """Inbound: the customer reached out. Outbound: the company reached out."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class Priority(Enum):
    URGENT = "urgent"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"


class ActorKind(Enum):
    """Who caused an event: a person, a bot, or a system acting on its own."""

    AGENT = "agent"
    SUPERVISOR = "supervisor"
    BOT = "bot"
    CUSTOMER = "customer"
    SYSTEM = "system"


@dataclass(frozen=True)
class Actor:
    """The one who did it, recorded on every event for audit."""

    kind: ActorKind
    id: str

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.id}"
