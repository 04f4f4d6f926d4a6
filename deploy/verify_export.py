"""Verify a crm-audit export with nothing but the standard library: `python verify_export.py FILE`.

Exit 0: every line's hash recomputes and every stream's chain is whole from its first event.
Exit 1: the first problem found, named by line, stream, revision and global position.

With `--seal seal-N.json` (a seal `crm-audit seals --save` kept; FILE from `crm-audit export
--all`), also recompute the global chain over the lines in order and check that the lines up to
the seal's position are exactly its `count` events, the last at its position, chaining to its
`head`. A seal covers every event from global position 1, so only a whole-store export can match
it. The seal's signature is checked by verify_seal.py.
"""

import base64
import hashlib
import json
import sys
from typing import Any

HASHED = ("previous_hash", "stream", "revision", "event_id", "type", "metadata", "recorded_at")


def canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def verify(lines: list[str], seal: dict[str, Any] | None = None) -> str | None:
    heads: dict[str, tuple[int, str]] = {}  # stream -> (last revision, its content hash)
    last_position, count, chain = 0, 0, "0" * 64  # count and chain: the global order's so far
    matched = False  # whether the lines up to the seal's position matched it
    for number, text in enumerate(lines, start=1):
        try:
            e = json.loads(text)
            data = base64.b64decode(e["data_base64"], validate=True)
            content = {key: e[key] for key in HASHED}
            where = f"line {number}: {e['stream']} revision {e['revision']}"
            where += f" (global position {e['global_position']})"
            if not (type(e["global_position"]) is type(e["revision"]) is int):
                raise TypeError("global_position and revision must be integers")
        except (ValueError, KeyError, TypeError) as exc:
            return f"line {number}: not an export line ({type(exc).__name__}: {exc})"
        content["data"] = hashlib.sha256(data).hexdigest()
        if hashlib.sha256(canonical(content)).hexdigest() != e["content_hash"]:
            return f"{where}: its content does not hash to its content_hash (altered)"
        revision, previous = heads.get(e["stream"], (-1, "0" * 64))
        if e["revision"] != revision + 1:
            return f"{where}: expected revision {revision + 1} here (missing or moved)"
        if e["previous_hash"] != previous:
            return f"{where}: previous_hash does not link to the stream's previous event"
        if e["global_position"] <= last_position:
            return f"{where}: not after global position {last_position} (lines out of order)"
        heads[e["stream"]], last_position = (e["revision"], e["content_hash"]), e["global_position"]
        if seal is None or matched:
            continue  # after the seal: vouched for by the streams' chains only
        if last_position > seal["position"]:
            return f"{where}: past the seal's position {seal['position']}, no line there (position)"
        link = [chain, last_position, e["stream"], e["revision"], e["content_hash"]]
        count, chain = count + 1, hashlib.sha256(canonical(link)).hexdigest()
        if count > seal["count"]:
            return f"{where}: more than the seal's {seal['count']} events up to here (count)"
        if last_position == seal["position"]:
            if count != seal["count"]:
                return f"{where}: {count} events up to the seal, it has {seal['count']} (count)"
            if chain != seal["head"]:
                return f"{where}: the global chain up to here is not the seal's head (head)"
            matched = True
    if seal is not None and not matched:
        return f"the export ends at global position {last_position}, before the seal (position)"
    return None


def main() -> None:
    args, seal = sys.argv[1:], None
    try:
        if len(args) == 3 and args[1] == "--seal":
            with open(args.pop(), encoding="utf-8") as kept:
                seal = json.load(kept)
            args.pop()
        if len(args) != 1 or not (seal is None or _is_seal(seal)):
            sys.exit("usage: verify_export.py FILE [--seal seal-N.json (crm-audit seals --save)]")
        with open(args[0], encoding="utf-8") as export:
            problem = verify([line for line in export.read().split("\n") if line], seal)
    except (OSError, ValueError) as exc:  # a file missing, or a seal that is not JSON
        sys.exit(f"cannot check: {type(exc).__name__}: {exc}")
    if problem and problem.endswith(("(count)", "(position)", "(head)")):
        problem += ": something up to the seal was altered, inserted, removed or reordered"
        problem += " (or FILE is not a whole-store export: crm-audit export --all)"
    if problem:
        print(problem)
        sys.exit(1)
    print("ok: every line verifies", end="")
    if seal is not None:
        print(
            f"; the {seal['count']} events up to {seal['position']} chain to the seal's head",
            end="",
        )
    print()


def _is_seal(seal: object) -> bool:
    """A kept seal's checked fields, of the right kinds (the signature is verify_seal.py's)."""
    if not isinstance(seal, dict):
        return False
    numbers = [seal.get("position"), seal.get("count")]
    return all(type(n) is int and n > 0 for n in numbers) and isinstance(seal.get("head"), str)


if __name__ == "__main__":
    main()
