"""The export form of a recorded event: one canonical JSON line holding everything its hash covers.

`content_hash` is sha256 over the canonical JSON of previous_hash, stream, revision, event_id,
type, sha256(data) in hex, the metadata as hashed and recorded_at as hashed (crm.envelope); the
line carries the data itself (base64, so the exact bytes come back) and the rest verbatim, so a
script with nothing but hashlib recomputes the chain (README, "Audit"; deploy/verify_export.py).
"""

from __future__ import annotations

import base64

from crm.envelope import RecordedEvent, canonical_json

EXPORT_FORMAT = "crm.audit.export.v1"


def export_line(event: RecordedEvent, description: str) -> str:
    """The event as one line of canonical JSON (no newline); `description` is not hashed."""
    line = {
        "format": EXPORT_FORMAT,
        "global_position": event.global_position,
        "stream": event.stream,
        "revision": event.revision,
        "event_id": event.event_id,
        "type": event.type,
        "data_base64": base64.b64encode(event.data).decode("ascii"),
        "metadata": event.metadata.to_dict(),
        "recorded_at": event.recorded_at.isoformat(),
        "previous_hash": event.previous_hash,
        "content_hash": event.content_hash,
        "description": description,
    }
    return canonical_json(line).decode("utf-8")
