"""The `services` setting: which gRPC services one server serves, checked before anything starts."""

from __future__ import annotations

import pytest

from crm.setting import SettingError
from crm.settings import SERVICE_NAMES, SERVICES, resolve
from services.grpc_server import FULL_NAMES, REGISTER


def test_by_default_a_server_serves_all_five() -> None:
    assert resolve((SERVICES,), {}, {}).services == (
        "customer",
        "case",
        "feedback",
        "timeline",
        "audit",
    )


@pytest.mark.parametrize(
    ("text", "services"),
    [
        ("customer", ("customer",)),
        ("timeline,case", ("case", "timeline")),
        (" feedback , customer ,", ("customer", "feedback")),
        ("case,case", ("case",)),
    ],
)
def test_a_comma_list_names_the_services_each_once(text: str, services: tuple[str, ...]) -> None:
    assert resolve((SERVICES,), {}, {"CRM_SERVICES": text}).services == services
    assert resolve((SERVICES,), {"services": text}, {}).services == services


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "orders",
            "no service 'orders'; give one or more of customer,case,feedback,timeline,audit",
        ),
        ("customer,Case", "no service 'Case'"),
        ("customer;case", "no service 'customer;case'"),
        (",", "',' names no service; give one or more of customer,case,feedback,timeline,audit"),
        (" , ", "names no service"),
    ],
)
def test_an_unknown_name_or_an_empty_list_is_refused_naming_the_setting(
    text: str, problem: str
) -> None:
    with pytest.raises(SettingError) as raised:
        resolve((SERVICES,), {}, {"CRM_SERVICES": text})
    assert str(raised.value).startswith("--services / CRM_SERVICES: ")
    assert problem in str(raised.value)


def test_the_server_can_register_exactly_the_services_the_setting_names() -> None:
    assert tuple(REGISTER) == SERVICE_NAMES
    assert tuple(FULL_NAMES) == SERVICE_NAMES
    assert sorted(FULL_NAMES.values()) == [
        "crm.v1.AuditService",
        "crm.v1.CaseService",
        "crm.v1.CustomerService",
        "crm.v1.FeedbackService",
        "crm.v1.TimelineService",
    ]
