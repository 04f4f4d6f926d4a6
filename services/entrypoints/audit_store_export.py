"""`crm-audit export --all`: the whole store as JSON lines (ExportStore), for checking a kept seal
outside the system with `deploy/verify_export.py FILE --seal seal-N.json`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from typing import TextIO

from crm.v1 import audit_service_pb2, audit_service_pb2_grpc


def add_arguments(
    export: argparse.ArgumentParser, subject: argparse._MutuallyExclusiveGroup
) -> None:
    """`--all` as the export subject group's third choice, and `--up-to`."""
    subject.add_argument(
        "--all", action="store_true", help="the whole store in global order (ExportStore)"
    )
    export.add_argument(
        "--up-to",
        type=int,
        default=0,
        metavar="N",
        help="with --all: the last global position to export (default: the store's head)",
    )


def misuse(args: argparse.Namespace) -> str:
    """What is wrong with the command line that argparse cannot say ("" when nothing)."""
    if args.command != "export":
        return ""
    if args.up_to and not args.all:
        return "--up-to goes with --all (a subject's export is always whole)"
    if args.up_to < 0:
        return "--up-to must be a global position (0: the store's head)"
    return ""


def wanted(args: argparse.Namespace) -> bool:
    """Whether this module runs the command line."""
    return args.command == "export" and bool(args.all)


def run(
    stub: audit_service_pb2_grpc.AuditServiceStub, args: argparse.Namespace, out: TextIO
) -> int:
    """Stream the lines to `--output` (or `out`), one a line; returns the exit status (0). A
    refused or broken call raises grpc.RpcError, which the caller reports with status 2."""
    lines = stub.ExportStore(
        audit_service_pb2.ExportStoreRequest(up_to=args.up_to), timeout=args.timeout
    )
    if not args.output:
        _write(lines, out)
        return 0
    with open(args.output, "w", encoding="utf-8") as file:
        count = _write(lines, file)
    sys.stderr.write(f"{count} events written to {args.output}\n")
    return 0


def _write(lines: Iterable[audit_service_pb2.ExportLine], out: TextIO) -> int:
    count = 0
    for line in lines:
        out.write(f"{line.json}\n")
        count += 1
    return count
