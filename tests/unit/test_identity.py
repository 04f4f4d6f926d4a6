"""Whom an event is recorded for: the credential's principal, or whom a bot or system acts for."""

from __future__ import annotations

import pytest

from crm.errors import PermissionDenied
from crm.identity import Attribution, Principal, Role, attribute, kept_to_teams, parse_actor
from crm.vocabulary import Actor, ActorKind

AGENT_7 = Actor(ActorKind.AGENT, "agent-7")
CUSTOMER = Actor(ActorKind.CUSTOMER, "c-1")


def test_a_person_is_recorded_as_themself_whether_or_not_the_request_names_them() -> None:
    agent = Principal("agent-7", Role.AGENT, ("billing",))
    assert attribute(agent, None) == Attribution(AGENT_7, teams=frozenset({"billing"}))
    assert attribute(agent, AGENT_7) == Attribution(AGENT_7, teams=frozenset({"billing"}))
    supervisor = Principal("sup-1", Role.SUPERVISOR)
    assert attribute(supervisor, None).actor == Actor(ActorKind.SUPERVISOR, "sup-1")


@pytest.mark.parametrize(
    "claimed",
    [
        Actor(ActorKind.AGENT, "agent-8"),
        Actor(ActorKind.SUPERVISOR, "agent-7"),
        Actor(ActorKind.SYSTEM, "shop"),
        CUSTOMER,
    ],
)
def test_a_person_naming_anyone_else_is_refused(claimed: Actor) -> None:
    with pytest.raises(PermissionDenied, match=r"context\.actor"):
        attribute(Principal("agent-7", Role.AGENT), claimed)


def test_a_service_acting_for_an_agent_or_customer_records_both() -> None:
    shop = Principal("shop", Role.SERVICE)
    assert attribute(shop, AGENT_7) == Attribution(AGENT_7, via=Actor(ActorKind.SYSTEM, "shop"))
    assert attribute(shop, CUSTOMER) == Attribution(CUSTOMER, via=Actor(ActorKind.SYSTEM, "shop"))
    assert attribute(shop, None) == Attribution(Actor(ActorKind.SYSTEM, "shop"))


def test_acting_for_in_the_token_wins_and_a_request_naming_someone_else_is_refused() -> None:
    bot = Principal("bot-1", Role.BOT, acting_for=AGENT_7)
    assert attribute(bot, None) == Attribution(AGENT_7, via=Actor(ActorKind.BOT, "bot-1"))
    assert attribute(bot, AGENT_7).actor == AGENT_7
    with pytest.raises(PermissionDenied):
        attribute(bot, Actor(ActorKind.AGENT, "agent-8"))


@pytest.mark.parametrize(
    ("role", "claimed"),
    [
        (Role.SERVICE, Actor(ActorKind.SUPERVISOR, "sup-1")),  # approvals weigh more
        (Role.SERVICE, Actor(ActorKind.SYSTEM, "ivr")),  # another system
        (Role.BOT, Actor(ActorKind.BOT, "bot-2")),
        (Role.BOT, Actor(ActorKind.SUPERVISOR, "sup-1")),
        (Role.ADMIN, AGENT_7),
        (Role.AUDITOR, AGENT_7),
    ],
)
def test_no_one_acts_for_a_supervisor_or_another_system(role: Role, claimed: Actor) -> None:
    with pytest.raises(PermissionDenied):
        attribute(Principal("x", role), claimed)


@pytest.mark.parametrize(
    ("principal", "teams"),
    [
        (Principal("agent-7", Role.AGENT, ("billing", "vip")), frozenset({"billing", "vip"})),
        (Principal("agent-7", Role.AGENT), frozenset()),  # no teams: unassigned cases only
        (Principal("sup-1", Role.SUPERVISOR, ("billing",)), None),
        (Principal("root", Role.ADMIN), None),
        (Principal("shop", Role.SERVICE, ("billing",)), None),
        (Principal("bot-1", Role.BOT, ("billing",), acting_for=AGENT_7), None),
    ],
)
def test_only_an_agent_calling_for_itself_is_kept_to_its_teams(
    principal: Principal, teams: frozenset[str] | None
) -> None:
    assert kept_to_teams(principal) == teams
    assert attribute(principal, None).teams == teams


def test_actors_parse_from_kind_and_id() -> None:
    assert parse_actor("agent:agent-7") == AGENT_7
    for wrong in ("agent", "agent:", "robot:r-1", ""):
        with pytest.raises(ValueError):
            parse_actor(wrong)
