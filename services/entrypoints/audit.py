"""`crm-audit`: an auditor's command line over AuditService: history, export, verify and as-of.

Talks to a running server over gRPC (`--target`). On a terminal it prints a readable table; piped,
one JSON object a line, for other tools. Exit status: 0 done (and the history verified), 1 the
history does not verify, 2 a wrong command line or a call the server refused or could not take.
"""

from __future__ import annotations

import argparse
import collections
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from crm.v1 import audit_service_pb2, audit_service_pb2_grpc, common_pb2
from services.entrypoints import audit_as_of, audit_seals, audit_store_export
from services.entrypoints.audit_output import message_json

PROG = "crm-audit"
DEFAULT_TARGET = "127.0.0.1:50051"
USAGE, BROKEN = 2, 1


JSON = "JSON lines even on a terminal"


def parser() -> argparse.ArgumentParser:
    """Subcommands, each naming its subject with --customer or --case."""
    parsed = argparse.ArgumentParser(prog=PROG, description=__doc__)
    parsed.add_argument("--target", default=DEFAULT_TARGET, help="the server, HOST:PORT")
    parsed.add_argument("--timeout", type=float, default=60.0, help="seconds per call")
    parsed.add_argument(
        "--token-file", help="a file holding the bearer token (crm-token --role auditor ...)"
    )
    parsed.add_argument(
        "--trust",
        help="the PEM certificate to trust (TLS), e.g. var/tls/server.crt; none: plaintext",
    )
    parsed.add_argument("--json", action="store_true", help=JSON)
    commands = parsed.add_subparsers(dest="command", required=True)
    history = commands.add_parser("history", help="the recorded events, in global order")
    export = commands.add_parser("export", help="JSON lines to check with verify_export.py")
    verify = commands.add_parser("verify", help="recompute every stream's hash chain")
    for command in (history, export, verify):
        subject = command.add_mutually_exclusive_group(required=True)
        subject.add_argument("--customer", help="a customer id (merged profiles included)")
        subject.add_argument("--case", help="a case id")
        if command is verify:
            audit_seals.add_subject(subject)
        if command is export:
            audit_store_export.add_arguments(export, subject)
    audit_seals.add_commands(commands, verify)
    history.add_argument("--since", type=_instant, help="ISO 8601, inclusive (UTC if no offset)")
    history.add_argument("--until", type=_instant, help="ISO 8601, exclusive")
    history.add_argument(
        "--occurred", action="store_true", help="--since/--until on occurred, not recorded, time"
    )
    history.add_argument("--type", action="append", default=[], help="an event type (repeat)")
    history.add_argument("--actor", action="append", default=[], help="an actor id (repeat)")
    history.add_argument("--page-size", type=int, default=500, help="events per call (<= 500)")
    export.add_argument("--output", "-o", help="a file to write (default: standard output)")
    audit_as_of.add_parser(commands, _instant)
    for command in commands.choices.values():  # `crm-audit history --json` reads as well
        command.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=JSON)
    return parsed


def main(argv: list[str] | None = None) -> None:
    arguments = parser()
    args = arguments.parse_args(argv)
    if problem := audit_seals.misuse(args) or audit_store_export.misuse(args):
        arguments.error(problem)  # exit status 2, with the usage
    try:
        with _channel(args) as channel:
            stub = audit_service_pb2_grpc.AuditServiceStub(channel)
            status = run(stub, args, sys.stdout, as_json=args.json or not sys.stdout.isatty())
    except grpc.RpcError as exc:
        # What the server said (a refused request, NOT_FOUND) or that it could not be reached.
        said = f"{exc.code().name}: {exc.details()}" if isinstance(exc, grpc.Call) else str(exc)
        sys.stderr.write(f"{PROG}: {args.target}: {said}\n")
        raise SystemExit(USAGE) from None
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"{PROG}: {exc}\n")
        raise SystemExit(USAGE) from None
    raise SystemExit(status)


def _channel(args: argparse.Namespace) -> grpc.Channel:
    """A channel to the server, over TLS when told whom to trust, sending the token if given.

    The token is read from a file, not the command line, where other users could see it."""
    channel = (
        grpc.insecure_channel(args.target)
        if args.trust is None
        else grpc.secure_channel(
            args.target, grpc.ssl_channel_credentials(Path(args.trust).read_bytes())
        )
    )
    if args.token_file is None:
        return channel
    token = Path(args.token_file).read_text().strip()
    return grpc.intercept_channel(channel, _Bearer(token))


class _Bearer(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
):
    """Adds the authorization header to every call."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details: Any) -> Any:
        return _CallDetails(
            details.method,
            details.timeout,
            [*(details.metadata or ()), self._header],
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)


class _CallDetails(
    collections.namedtuple(
        "_CallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    pass


def run(
    stub: audit_service_pb2_grpc.AuditServiceStub,
    args: argparse.Namespace,
    out: TextIO,
    *,
    as_json: bool,
) -> int:
    """Run one subcommand, writing to `out`; returns the exit status."""
    if args.command == audit_as_of.COMMAND:
        return audit_as_of.run_as_of(stub, args, out, as_json=as_json)
    if audit_seals.wanted(args):
        return audit_seals.run(stub, args, out, as_json=as_json)
    if audit_store_export.wanted(args):
        return audit_store_export.run(stub, args, out)
    subject = (
        audit_service_pb2.AuditSubject(case_id=args.case)
        if args.case is not None
        else audit_service_pb2.AuditSubject(customer_id=args.customer)
    )
    if args.command == "history":
        events = _history(stub, subject, args)
        for event in events:
            out.write(message_json(event) if as_json else _row(event))
        return 0
    if args.command == "export":
        request = audit_service_pb2.ExportHistoryRequest(subject=subject)
        lines = stub.ExportHistory(request, timeout=args.timeout)
        if args.output:
            with open(args.output, "w", encoding="utf-8") as file:
                file.writelines(f"{line.json}\n" for line in lines)
        else:
            out.writelines(f"{line.json}\n" for line in lines)
        return 0
    request_verify = audit_service_pb2.VerifyHistoryRequest(subject=subject)
    reply = stub.VerifyHistory(request_verify, timeout=args.timeout)
    out.write(message_json(reply) if as_json else _verdict(reply))
    return 0 if reply.ok else BROKEN


def _history(
    stub: audit_service_pb2_grpc.AuditServiceStub,
    subject: audit_service_pb2.AuditSubject,
    args: argparse.Namespace,
) -> Iterator[audit_service_pb2.HistoryEvent]:
    request = audit_service_pb2.GetHistoryRequest(
        subject=subject,
        event_types=args.type,
        actor_ids=args.actor,
        page_size=args.page_size,
        time_basis=(
            audit_service_pb2.TIME_BASIS_OCCURRED
            if args.occurred
            else audit_service_pb2.TIME_BASIS_RECORDED
        ),
    )
    if args.since is not None:
        request.since.CopyFrom(args.since)
    if args.until is not None:
        request.until.CopyFrom(args.until)
    while True:
        page = stub.GetHistory(request, timeout=args.timeout)
        yield from page.events
        if not page.next_page_token:
            return
        request.page_token = page.next_page_token


def _instant(text: str) -> Timestamp:
    """An ISO 8601 instant; one without an offset is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 instant") from None
    stamp = Timestamp()
    stamp.FromDatetime(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return stamp


def _when(stamp: Timestamp) -> str:
    return stamp.ToDatetime(tzinfo=UTC).isoformat(timespec="seconds")


def _row(event: audit_service_pb2.HistoryEvent) -> str:
    kind = common_pb2.ActorKind.Name(event.actor.kind).removeprefix("ACTOR_KIND_").lower()
    return (
        f"{event.global_position:>8}  {_when(event.recorded_at)}  occurred"
        f" {_when(event.occurred_at)}  {kind}:{event.actor.id:<14}  {event.stream}"
        f"@{event.revision}  {event.description}\n"
    )


def _verdict(reply: audit_service_pb2.VerifyHistoryReply) -> str:
    lines = [
        f"{'ok' if reply.ok else 'BROKEN'}: {reply.events_checked} events in"
        f" {reply.streams_checked} streams checked"
    ]
    for found in reply.breaks:
        lines.append(
            f"  {found.stream} revision {found.revision}"
            f" (global position {found.global_position}): {found.problem}"
        )
    for head in reply.heads:
        lines.append(f"  {head.stream}: {head.events} events, head {head.head_hash or '-'}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
