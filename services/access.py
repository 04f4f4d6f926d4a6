"""Which roles may call which RPC: one table, read by the server, the README and the tests.

Every RPC of every service the server registers is in `ACCESS`; the authentication interceptor
refuses a registered method that is missing (fail closed), and a test walks every RPC with every
role. Health checking needs no credential (load balancers probe it); reflection needs one unless
it is opened for development.
"""

from __future__ import annotations

from collections.abc import Mapping

from crm.identity import Role

SERVICE, BOT, AGENT, SUPERVISOR, AUDITOR, ADMIN = (
    Role.SERVICE,
    Role.BOT,
    Role.AGENT,
    Role.SUPERVISOR,
    Role.AUDITOR,
    Role.ADMIN,
)
EVERYONE = frozenset(Role)
READERS = frozenset({AGENT, SUPERVISOR, AUDITOR, ADMIN})
"""People who read customers' histories; auditors read, and change nothing."""
OVERSIGHT = frozenset({SUPERVISOR, AUDITOR, ADMIN})
"""Escalation lists, KPIs and follow-ups: what supervisors steer by and auditors check."""
CASEWORK = frozenset({AGENT, SUPERVISOR, ADMIN})
"""Working a case: agents (of their teams) and supervisors."""
INTAKE = frozenset({SERVICE, ADMIN})
"""What the internal systems report: customers, purchases, renewals, cancellations."""
CONTACT = frozenset({SERVICE, BOT, AGENT, SUPERVISOR, ADMIN})
"""Opening cases and recording contacts and feedback, from any channel."""
APPROVAL = frozenset({SUPERVISOR, ADMIN})
"""Approvals, de-escalation, merges and forgetting a customer: beyond an agent's authority."""


def _service(name: str, rules: Mapping[str, frozenset[Role]]) -> dict[str, frozenset[Role]]:
    return {f"/crm.v1.{name}/{method}": roles for method, roles in rules.items()}


ACCESS: dict[str, frozenset[Role]] = {
    **_service(
        "CustomerService",
        {
            "RegisterCustomer": INTAKE,
            "UpdateContactPoints": INTAKE | CASEWORK,
            "ChangeTier": INTAKE | APPROVAL,
            "RecordPurchase": INTAKE,
            "RecordRenewal": INTAKE,
            "RecordCancellation": INTAKE,
            "MergeCustomers": APPROVAL,
            "UndoMerge": APPROVAL,
            "GetCustomer": READERS | {SERVICE, BOT},
            "ForgetCustomer": APPROVAL,
        },
    ),
    **_service(
        "CaseService",
        {
            "OpenCase": CONTACT,
            "RecordContact": CONTACT,
            "AssignCase": CASEWORK,
            "TransferCase": CASEWORK | {BOT},  # a bot hands over to another department
            "ChangePriority": CASEWORK,
            "AddNote": CASEWORK,
            "SetPendingOnCustomer": CASEWORK,
            "ResumeCase": CASEWORK | {SERVICE},  # the customer answered through a channel
            "ResolveCase": CASEWORK | {BOT},  # a bot resolves what it solved alone
            "ReopenCase": CASEWORK | {SERVICE},
            "CloseCase": CASEWORK,
            "EscalateCase": CASEWORK,
            "DeEscalateCase": APPROVAL,
            "OfferCompensation": CASEWORK,
            "DecideCompensation": APPROVAL,
            "GetCaseSummary": READERS | {BOT},
            "GetCase": READERS | {BOT},
        },
    ),
    **_service(
        "FeedbackService",
        {
            "SubmitSurvey": CONTACT,
            "SubmitReview": CONTACT,
            "RecordVoiceOfCustomer": CONTACT,
            "GetFeedback": READERS,
        },
    ),
    **_service(
        "TimelineService",
        {
            "GetTimeline": READERS,
            "WatchTimeline": READERS,
            "GetCaseView": READERS,
            "ListEscalatedCases": OVERSIGHT,
            "GetCustomerRisk": READERS,
            "GetKpis": OVERSIGHT,
            "ListFollowUps": OVERSIGHT,
        },
    ),
    **_service(
        "AuditService",
        {
            "GetHistory": OVERSIGHT,
            "ExportHistory": frozenset({AUDITOR, ADMIN}),
            "VerifyHistory": frozenset({AUDITOR, ADMIN}),
            "GetCaseAsOf": OVERSIGHT,
            "GetCustomerAsOf": OVERSIGHT,
            "GetTimelineAsOf": OVERSIGHT,
            "ListSeals": frozenset({AUDITOR, ADMIN}),
            "VerifyStore": frozenset({AUDITOR, ADMIN}),
            "ExportStore": frozenset({AUDITOR, ADMIN}),
        },
    ),
}
"""RPC full method name -> the roles that may call it."""

PUBLIC_PREFIXES = ("/grpc.health.v1.Health/",)
"""Calls anyone may make without a credential."""
REFLECTION_PREFIXES = (
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
"""Reflection: any authenticated caller, or anyone when opened for development."""


def is_public(method: str, *, reflection_open: bool) -> bool:
    """Whether a call needs no credential at all."""
    return method.startswith(PUBLIC_PREFIXES) or (
        reflection_open and method.startswith(REFLECTION_PREFIXES)
    )


def allowed_roles(method: str) -> frozenset[Role]:
    """The roles that may call `method`; none for a method the table does not know."""
    if method.startswith(REFLECTION_PREFIXES):
        return EVERYONE
    return ACCESS.get(method, frozenset())


def markdown_table() -> str:
    """The README's role table, generated from `ACCESS` (a test compares them)."""
    roles = list(Role)
    lines = [
        "| RPC | " + " | ".join(role.value for role in roles) + " |",
        "| --- |" + " :-: |" * len(roles),
    ]
    for method, allowed in ACCESS.items():
        service, name = method.removeprefix("/crm.v1.").split("/")
        marks = " | ".join("yes" if role in allowed else "" for role in roles)
        lines.append(f"| `{service}.{name}` | {marks} |")
    return "\n".join(lines)
