"""Who is calling: the principal a credential proves, and the actor it makes of a request.

The actor recorded on an event comes from the caller's credential, never from what the request
says. A request may still name an actor: a person's must be the caller, while an internal system
or a bot may name the agent or customer it acts for, and then both are recorded. Pure: the
authentication interceptor puts the principal of each call in a context variable that the
servicers' conversions read.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from enum import Enum

from crm.errors import PermissionDenied
from crm.vocabulary import Actor, ActorKind


class Role(Enum):
    """What a caller is; the access table says which calls each role may make."""

    SERVICE = "service"  # an internal system: shop, telephony, chat platform, mail gateway
    BOT = "bot"
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"  # reads history, changes nothing
    ADMIN = "admin"  # operates the system


ROLE_NAMES = tuple(role.value for role in Role)

ACTOR_KIND_OF: dict[Role, ActorKind] = {
    Role.SERVICE: ActorKind.SYSTEM,
    Role.BOT: ActorKind.BOT,
    Role.AGENT: ActorKind.AGENT,
    Role.SUPERVISOR: ActorKind.SUPERVISOR,
    Role.AUDITOR: ActorKind.SYSTEM,
    Role.ADMIN: ActorKind.SYSTEM,
}
"""How a role appears as the actor of an event (the event vocabulary predates roles)."""

MAY_ACT_FOR: dict[Role, frozenset[ActorKind]] = {
    Role.SERVICE: frozenset({ActorKind.AGENT, ActorKind.BOT, ActorKind.CUSTOMER}),
    Role.BOT: frozenset({ActorKind.AGENT, ActorKind.CUSTOMER}),
}
"""Whom a caller may name as the one it acts for: never a supervisor, whose approvals weigh more,
and never another system. People act only for themselves."""


@dataclass(frozen=True)
class Principal:
    """The caller a credential proved: its subject, role, teams, and whom it acts for."""

    subject: str
    role: Role
    teams: tuple[str, ...] = ()
    acting_for: Actor | None = None

    @property
    def actor(self) -> Actor:
        """The caller itself as the actor of an event."""
        return Actor(ACTOR_KIND_OF[self.role], self.subject)

    def __str__(self) -> str:
        return f"{self.role.value}:{self.subject}"


@dataclass(frozen=True)
class Attribution:
    """Whom an event is recorded for (`actor`) and, when someone else made the call, who (`via`);
    `teams`: the teams whose cases the actor is kept to, None when it is kept to none."""

    actor: Actor
    via: Actor | None = None
    teams: frozenset[str] | None = None


def kept_to_teams(principal: Principal) -> frozenset[str] | None:
    """The teams whose cases `principal` may work, or None when it is not kept to teams.

    Only an agent calling for itself is: its token says its teams (none at all: it may work
    unassigned cases only). Supervisors and admins work every case. A service or bot acting for an
    agent is not kept either: its credential proves the system, not the agent's teams, and the
    system that speaks for an agent answers for keeping that agent to its teams, as it answers
    for naming the agent at all.
    """
    if principal.role is Role.AGENT:
        return frozenset(principal.teams)
    return None


def attribute(principal: Principal, claimed: Actor | None) -> Attribution:
    """The actor to record for a call by `principal` whose request names `claimed` (or nobody).

    A claimed actor that the principal may not speak for is refused with PermissionDenied: the
    caller is known, it asks to be recorded as someone it cannot prove to be.
    """
    own = principal.actor
    target = principal.acting_for or claimed
    if claimed is not None and principal.acting_for is not None and claimed != target:
        raise PermissionDenied(
            f"context.actor: {claimed} is not {target}, whom the credential acts for"
        )
    if target is None or target == own:
        return Attribution(own, teams=kept_to_teams(principal))
    if target.kind not in MAY_ACT_FOR.get(principal.role, frozenset()):
        where = "context.actor" if claimed is not None else "the credential's acting_for"
        raise PermissionDenied(
            f"{where}: {target} is not the caller, {own}; {_whom(principal.role)}"
        )
    return Attribution(target, via=own)


def _whom(role: Role) -> str:
    kinds = sorted(kind.value for kind in MAY_ACT_FOR.get(role, frozenset()))
    if not kinds:
        return f"the role {role.value} acts only for itself"
    return f"the role {role.value} may act only for: {', '.join(kinds)}"


def parse_actor(text: str) -> Actor:
    """`kind:id` (e.g. `agent:agent-7`) as an Actor; ValueError says what is wrong."""
    kind, _, actor_id = text.partition(":")
    try:
        return Actor(ActorKind(kind), actor_id) if actor_id else _no_id(text)
    except ValueError:
        kinds = ", ".join(k.value for k in ActorKind)
        raise ValueError(f"{text!r} is not kind:id with a kind of {kinds}") from None


def _no_id(text: str) -> Actor:
    raise ValueError(f"{text!r} has no id after the kind")


_CURRENT: ContextVar[Principal | None] = ContextVar("crm_principal", default=None)


def current_principal() -> Principal | None:
    """The principal of the call being served; None when authentication is off."""
    return _CURRENT.get()


@contextmanager
def acting_as(principal: Principal | None) -> Iterator[None]:
    """Serve the code in the block as `principal` (the authentication interceptor's wrapper)."""
    token = _CURRENT.set(principal)
    try:
        yield
    finally:
        _CURRENT.reset(token)
