"""Agents work the cases of their teams: the rule table of services/case/team_access.py."""

from __future__ import annotations

import pytest

from crm.errors import PermissionDenied
from services.case.domain import Case
from services.case.events import CaseAssigned, CaseEvent, CaseTransferred, ContactHandedOver
from services.case.team_access import require_team
from tests.unit.test_case_domain import CASE, OPENED, given

BILLING = frozenset({"billing"})
ASSIGNED_TO_BILLING = CaseAssigned(CASE, "agent-7", "billing", "", "")
ASSIGNED_TO_TECHNICAL = CaseAssigned(CASE, "agent-9", "technical", "", "")
TRANSFERRED = CaseTransferred(CASE, "support", "technical", "needs an engineer")
HANDED_TO_TECHNICAL = ContactHandedOver(CASE, "contact-1", "bot-1", "", "technical")


def state(*events: CaseEvent) -> Case:
    return given(OPENED, *events)


@pytest.mark.parametrize(
    ("history", "teams"),
    [
        ((), frozenset()),  # nobody's case: any agent, even one of no team, may take it
        ((), BILLING),
        ((ASSIGNED_TO_BILLING,), BILLING),  # a case of the agent's team
        ((ASSIGNED_TO_BILLING,), frozenset({"vip", "billing"})),  # one of several teams
        ((ASSIGNED_TO_TECHNICAL, TRANSFERRED), BILLING),  # transferred: waits for someone
        ((ASSIGNED_TO_TECHNICAL,), None),  # not kept to teams: supervisors, admins, systems
    ],
)
def test_allowed(history: tuple[CaseEvent, ...], teams: frozenset[str] | None) -> None:
    require_team(state(*history), teams)


@pytest.mark.parametrize(
    ("history", "teams"),
    [
        ((ASSIGNED_TO_TECHNICAL,), BILLING),  # another team's case, taking it over included
        ((ASSIGNED_TO_TECHNICAL,), frozenset({"vip", "billing"})),  # named: "billing, vip"
        ((ASSIGNED_TO_TECHNICAL,), frozenset()),  # an agent of no team: unassigned cases only
        ((ASSIGNED_TO_BILLING, TRANSFERRED, ASSIGNED_TO_TECHNICAL), BILLING),  # taken since
        ((HANDED_TO_TECHNICAL,), BILLING),  # a bot handed it to a team's queue
    ],
)
def test_refused(history: tuple[CaseEvent, ...], teams: frozenset[str]) -> None:
    with pytest.raises(PermissionDenied) as refused:
        require_team(state(*history), teams)
    yours = ", ".join(sorted(teams)) or "none"
    assert str(refused.value) == (
        f"case {CASE} is worked by team technical, and agents work the cases of their teams only"
        f" (yours: {yours}); ask team technical or a supervisor to transfer or reassign it"
    )


def test_opening_a_case_is_no_case_work_yet() -> None:
    require_team(None, frozenset())


def test_a_transfer_takes_the_case_from_its_team_and_an_assignment_gives_it_to_one() -> None:
    assert state().working_team == ""
    assert state(ASSIGNED_TO_BILLING).working_team == "billing"
    after = state(ASSIGNED_TO_BILLING, TRANSFERRED)
    # The team of the latest assignment stays for reports; no team works the case any more.
    assert (after.team, after.working_team, after.assignee) == ("billing", "", "")
    assert state(ASSIGNED_TO_BILLING, HANDED_TO_TECHNICAL).working_team == "technical"
    handed_to_an_agent_only = ContactHandedOver(CASE, "contact-1", "bot-1", "agent-3", "")
    assert state(ASSIGNED_TO_BILLING, handed_to_an_agent_only).working_team == "billing"
