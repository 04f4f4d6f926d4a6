"""Agents work the cases of their teams: which case commands an agent's teams allow (pure).

The access table (services/access.py) decides per RPC; this decides per case, against the team
that works the case now (`Case.working_team`):

- a case nobody's team works (new, or just transferred to another department) may be worked by
  any agent, so that someone can pick it up (assign it to themselves or route it to a team);
- a case of one of the agent's teams may be worked in every way the table allows, including
  assigning it to anyone and transferring it to another department: giving a case away is the
  point of a transfer, and afterwards no team works it until someone takes it;
- a case of another team is refused whatever the command, taking it over included.

Who is kept to teams is decided where the caller is known (crm.identity.kept_to_teams): agents
calling for themselves; not supervisors, admins, services or bots.
"""

from __future__ import annotations

from crm.errors import PermissionDenied
from services.case.domain import Case


def require_team(state: Case | None, teams: frozenset[str] | None) -> None:
    """Refuse a command on the case in `state` when the caller, kept to `teams`, may not work it.

    The same for every command, taking the case over included. `teams` None: the caller is not
    kept to teams. The refusal names the case's team and the caller's, nothing of the customer.
    """
    if teams is None or state is None:  # not kept, or no case yet (opening one is no case work)
        return
    team = state.working_team
    if not team or team in teams:
        return
    yours = ", ".join(sorted(teams)) if teams else "none"
    raise PermissionDenied(
        f"case {state.case_id} is worked by team {team}, and agents work the cases of their "
        f"teams only (yours: {yours}); ask team {team} or a supervisor to transfer or reassign it"
    )
