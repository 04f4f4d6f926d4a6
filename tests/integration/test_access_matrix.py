"""Every RPC with every role, through gRPC: the access table decides, and it knows every RPC."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import MethodDescriptor

from bench.server_thread import ServerThread
from crm.identity import Role
from crm.settings import Settings
from services.access import ACCESS, allowed_roles, markdown_table
from services.bootstrap import System, build_system
from services.grpc_server import FULL_NAMES

CALL_SECONDS = 10.0
WATCH_SECONDS = 0.5


def _methods() -> list[MethodDescriptor]:
    pool = descriptor_pool.Default()
    return [m for name in FULL_NAMES.values() for m in pool.FindServiceByName(name).methods]


METHODS = _methods()


def _path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def test_every_rpc_the_server_registers_is_in_the_access_table_and_nothing_else() -> None:
    assert {_path(m) for m in METHODS} == set(ACCESS)


def test_no_rpc_is_open_to_nobody_and_auditors_change_nothing() -> None:
    for method in METHODS:
        roles = allowed_roles(_path(method))
        assert Role.ADMIN in roles, method.name
        reads = method.name.startswith(("Get", "List", "Watch", "Export", "Verify"))
        assert (Role.AUDITOR in roles) == reads, method.name


def test_the_readme_shows_the_access_table_as_declared() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert markdown_table() in readme, f"README.md's role table should read:\n{markdown_table()}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    system: System = build_system(Settings.defaults(data_dir=tmp_path_factory.mktemp("matrix")))
    running = ServerThread(system)
    yield running
    running.stop(1)
    system.close()


def _code(channel: grpc.Channel, method: MethodDescriptor) -> grpc.StatusCode:
    """The status of calling `method` with an empty request (refused or not, it gets an answer)."""
    request = message_factory.GetMessageClass(method.input_type)()
    reply = message_factory.GetMessageClass(method.output_type)
    try:
        if method.server_streaming:
            stream = channel.unary_stream(
                _path(method),
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=reply.FromString,
            )
            for _ in stream(request, timeout=WATCH_SECONDS):
                pass
        else:
            unary = channel.unary_unary(
                _path(method),
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=reply.FromString,
            )
            unary(request, timeout=CALL_SECONDS)
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        return code
    return grpc.StatusCode.OK


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_each_role_calls_exactly_the_rpcs_the_table_gives_it(
    server: ServerThread, role: Role
) -> None:
    token = server.access.token(role, f"matrix-{role.value}")
    channel = server.access.channel(fixed_token=token)
    wrong: list[str] = []
    try:
        for method in METHODS:
            code = _code(channel, method)
            allowed = role in allowed_roles(_path(method))
            refused = code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)
            if allowed == refused:
                wrong.append(f"{method.name}: {code.name}")
    finally:
        channel.close()
    assert not wrong, f"{role.value}: {wrong}"
