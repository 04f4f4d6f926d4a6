"""Verify a crm-audit export with nothing but the standard library: `python verify_export.py FILE`.

Exit 0: every line's hash recomputes and every stream's chain is whole from its first event.
Exit 1: the first problem found, named by line, stream, revision and global position.
"""

import base64
import hashlib
import json
import sys

HASHED = ("previous_hash", "stream", "revision", "event_id", "type", "metadata", "recorded_at")


def canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def verify(lines: list[str]) -> str | None:
    heads: dict[str, tuple[int, str]] = {}  # stream -> (last revision, its content hash)
    last_position = 0
    for number, text in enumerate(lines, start=1):
        try:
            e = json.loads(text)
            data = base64.b64decode(e["data_base64"], validate=True)
            content = {key: e[key] for key in HASHED}
            where = f"line {number}: {e['stream']} revision {e['revision']}"
            where += f" (global position {e['global_position']})"
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
    return None


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as export:
        problem = verify([line for line in export.read().split("\n") if line])
    print(problem or "ok: every line verifies")
    sys.exit(1 if problem else 0)
