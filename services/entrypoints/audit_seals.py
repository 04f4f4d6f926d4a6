"""`crm-audit seals` and `crm-audit verify --all`: the seals over the global order, and the
whole store verified against the newest seal or one the auditor kept (a file `seals --save` wrote).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, TextIO

from crm.v1 import audit_service_pb2, audit_service_pb2_grpc
from services.entrypoints.audit_output import message_json

BROKEN = 1
KEY_FILE = "seal-key.pem"


def add_commands(commands: Any, verify: argparse.ArgumentParser) -> None:
    """The `seals` subcommand, and `--all` / `--seal` on `verify` (its subject group's third
    choice is the whole store)."""
    seals = commands.add_parser("seals", help="the seals over the global order, oldest first")
    seals.add_argument("--after", type=int, default=0, help="only seals after this position")
    seals.add_argument(
        "--save", metavar="DIR", help=f"keep each seal as DIR/seal-<position>.json, and {KEY_FILE}"
    )
    verify.add_argument(
        "--seal",
        metavar="FILE",
        help="with --all: verify against this kept seal (seals --save wrote it), not the newest",
    )


def add_subject(subject: argparse._MutuallyExclusiveGroup) -> None:
    subject.add_argument(
        "--all", action="store_true", help="the whole store, against a seal (VerifyStore)"
    )


def misuse(args: argparse.Namespace) -> str:
    """What is wrong with the command line that argparse cannot say ("" when nothing)."""
    if args.command == "verify" and args.seal and not args.all:
        return "--seal goes with --all (a seal covers the whole store)"
    return ""


def wanted(args: argparse.Namespace) -> bool:
    """Whether this module runs the command line."""
    return args.command == "seals" or (args.command == "verify" and bool(args.all))


def run(
    stub: audit_service_pb2_grpc.AuditServiceStub,
    args: argparse.Namespace,
    out: TextIO,
    *,
    as_json: bool,
) -> int:
    """Run `seals` or `verify --all`; returns the exit status. OSError or ValueError for a kept
    seal file that cannot be read."""
    if args.command == "seals":
        return _seals(stub, args, out, as_json=as_json)
    request = audit_service_pb2.VerifyStoreRequest()
    if args.seal:
        request.seal.CopyFrom(read_seal(Path(args.seal)))
    reply = stub.VerifyStore(request, timeout=args.timeout)
    out.write(message_json(reply) if as_json else verdict(reply))
    return 0 if reply.ok else BROKEN


def _seals(
    stub: audit_service_pb2_grpc.AuditServiceStub,
    args: argparse.Namespace,
    out: TextIO,
    *,
    as_json: bool,
) -> int:
    after, key_pem, key_id = args.after, "", ""
    seals: list[audit_service_pb2.Seal] = []
    while True:
        page = stub.ListSeals(
            audit_service_pb2.ListSealsRequest(after=after, limit=1000), timeout=args.timeout
        )
        seals.extend(page.seals)
        key_pem, key_id = page.public_key_pem, page.key_id
        if len(page.seals) < 1000:
            break
        after = page.seals[-1].position
    if args.save:
        folder = Path(args.save)
        folder.mkdir(parents=True, exist_ok=True)
        for seal in seals:
            (folder / f"seal-{seal.position}.json").write_text(_seal_json(seal))
        if key_pem:
            (folder / KEY_FILE).write_text(key_pem)
    if as_json:
        out.writelines(_seal_json(seal) for seal in seals)
    else:
        out.write(f"{len(seals)} seals, signed with key {key_id or '(not served)'}\n")
        out.write(f"{'position':>10}  {'events':>8}  {'sealed at':<25}  head\n")
        for seal in seals:
            out.write(f"{seal.position:>10}  {seal.count:>8}  {seal.sealed_at:<25}  {seal.head}\n")
    return 0


def read_seal(path: Path) -> audit_service_pb2.Seal:
    """A seal kept as JSON; ValueError naming the file when it is not one."""
    try:
        document = json.loads(path.read_text())
        return audit_service_pb2.Seal(
            position=int(document["position"]),
            count=int(document["count"]),
            head=str(document["head"]),
            previous_position=int(document.get("previous_position", 0)),
            sealed_at=str(document["sealed_at"]),
            key_id=str(document.get("key_id", "")),
            signature=str(document.get("signature", "")),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path}: not a kept seal ({type(exc).__name__}: {exc})") from None


def _seal_json(seal: audit_service_pb2.Seal) -> str:
    """A seal as kept: plain JSON with numbers as numbers (crm.seals.Seal.to_dict's form)."""
    fields = ("position", "count", "head", "previous_position", "sealed_at", "key_id")
    kept = {name: getattr(seal, name) for name in (*fields, "signature")}
    return json.dumps(kept, sort_keys=True) + "\n"


def verdict(reply: audit_service_pb2.VerifyStoreReply) -> str:
    """The readable form: what was checked against what, then each break."""
    seal = reply.seal
    against = (
        f"seal at global position {seal.position} ({seal.count} events, {seal.sealed_at})"
        if reply.HasField("seal")
        else "no seal (none kept): only each stream's own chain was checked"
    )
    lines = [
        f"{'ok' if reply.ok else 'BROKEN'}: {reply.events_checked} events in"
        f" {reply.streams_checked} streams checked against {against}",
        f"  {reply.sealed_events} events up to the seal, {reply.events_after_seal} after it"
        " (those only by their streams' chains)",
    ]
    if not reply.exact:
        lines.append("  the store's own seals do not hold: breaks are placed between seals")
    for found in reply.breaks:
        where = (
            f"{found.stream} revision {found.revision} (global position {found.global_position})"
            if found.stream
            else f"global position {found.global_position}"
        )
        lines.append(f"  {where}: {found.problem}")
    return "\n".join(lines) + "\n"
