"""A forget through one server is seen at once by another server on the same stores: the other
one's cached states and keys do not outlive the forget by any time."""

from __future__ import annotations

from pathlib import Path

from bench.server_thread import ServerThread
from crm.personal.cipher import PLACEHOLDER
from crm.settings import Settings
from crm.v1 import case_events_pb2, case_service_pb2, common_pb2, customer_service_pb2
from services.bootstrap import build_system
from tests.grpc_client import Client
from tests.integration.test_forget_customer import _get, _register

NAME = "Mariko Across-servers"
SUBJECT = "Refund for order 88 across servers"


def test_a_forget_through_one_server_reads_as_the_placeholder_on_the_other_at_once(
    tmp_path: Path,
) -> None:
    settings = Settings.defaults(
        data_dir=tmp_path, in_process_projector=False, in_process_deadlines=False
    )
    first, second = build_system(settings), build_system(settings)
    one, other = ServerThread(first), ServerThread(second)
    try:
        here, there = Client(one.access, prefix="one"), Client(other.access, prefix="two")
        customer = _register(here, NAME, "mariko@example.jp")
        case = here.cases.OpenCase(
            case_service_pb2.OpenCaseRequest(
                context=here.context(),
                customer_id=customer,
                channel=common_pb2.CHANNEL_CHAT,
                category=case_events_pb2.CATEGORY_BILLING_PAYMENT,
                priority=common_pb2.PRIORITY_NORMAL,
                subject=SUBJECT,
                description="asked twice already",
            )
        ).aggregate_id
        # The other server reads both, twice, so it holds their states and the key in its caches
        # and has just found the customer not forgotten.
        for _ in range(2):
            assert there.customers.GetCustomer(_get(customer)).name == NAME
            got = there.cases.GetCase(case_service_pb2.GetCaseRequest(case_id=case))
            assert got.subject == SUBJECT

        here.customers.ForgetCustomer(
            customer_service_pb2.ForgetCustomerRequest(
                context=here.supervisor_context("forget-across"),
                customer_id=customer,
                reason="erasure request, ticket GDPR-2026-88",
            )
        )

        assert there.customers.GetCustomer(_get(customer)).name == PLACEHOLDER
        got = there.cases.GetCase(case_service_pb2.GetCaseRequest(case_id=case))
        assert (got.subject, got.description) == (PLACEHOLDER, PLACEHOLDER)
    finally:
        one.stop()
        other.stop()
        first.close()
        second.close()
