"""The one error-to-status mapping, checked as a table."""

from __future__ import annotations

import logging

import grpc
import pytest

from crm import errors
from crm.grpc_errors import status_for


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.InvalidInput("subject", "is required"), grpc.StatusCode.INVALID_ARGUMENT),
        (errors.NotFound("case c-1 does not exist"), grpc.StatusCode.NOT_FOUND),
        (errors.AlreadyExists("case c-1 exists already"), grpc.StatusCode.ALREADY_EXISTS),
        (errors.InvariantViolated("case c-1 is closed"), grpc.StatusCode.FAILED_PRECONDITION),
        (errors.ConcurrencyConflict("stream moved"), grpc.StatusCode.ABORTED),
        (errors.PermissionDenied("not a supervisor"), grpc.StatusCode.PERMISSION_DENIED),
        (errors.Unauthenticated("no token"), grpc.StatusCode.UNAUTHENTICATED),
        (errors.ResourceExhausted("too many calls"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (errors.OperationalError("database is locked"), grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_each_error_maps_to_its_status_with_its_message(
    error: Exception, code: grpc.StatusCode
) -> None:
    assert status_for(error) == (code, str(error))


def test_invalid_input_message_names_the_field() -> None:
    _, message = status_for(errors.InvalidInput("context.request_id", "is required"))
    assert message == "context.request_id: is required"


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("secret path /var/lib/x"),
        errors.IntegrityError("chain broken at 7"),
        KeyError("k"),
    ],
)
def test_anything_else_is_internal_with_a_generic_message_and_a_logged_id(
    error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        code, message = status_for(error)
    assert code is grpc.StatusCode.INTERNAL
    assert str(error) not in message
    error_id = message.split()[2].rstrip(";")
    assert any(error_id in record.getMessage() for record in caplog.records)


def test_broken_history_is_data_loss_naming_the_event_with_an_alert_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Place:
        stream, revision, global_position = "case-7", 3, 41

    error = errors.HistoryBroken(Place(), "its content was altered after it was recorded")
    with caplog.at_level(logging.ERROR):
        code, message = status_for(error)
    assert code is grpc.StatusCode.DATA_LOSS
    assert message.startswith(
        "the history of case-7 is broken at revision 3 (global position 41): its content was"
    )
    error_id = message.rsplit("(error ", 1)[1].split(")")[0]
    assert any(
        "ALERT" in record.getMessage() and error_id in record.getMessage()
        for record in caplog.records
    )


def test_personal_data_that_does_not_open_is_data_loss_with_an_alert_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = errors.PersonalDataUnreadable("no data key for customer c-1, who was never forgotten")
    with caplog.at_level(logging.ERROR):
        code, message = status_for(error)
    assert code is grpc.StatusCode.DATA_LOSS
    assert message.startswith("no data key for customer c-1, who was never forgotten (error ")
    error_id = message.rsplit("(error ", 1)[1].split(")")[0]
    assert any(
        f"ALERT data loss, error {error_id}" in record.getMessage() for record in caplog.records
    )
