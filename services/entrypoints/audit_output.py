"""How every `crm-audit` subcommand prints a reply as JSON: one object a line, the proto field
names as the export lines and kept seal files spell them, every field present (`ok: false` or a
zero count must not go missing)."""

from __future__ import annotations

import json

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message


def message_json(message: Message) -> str:
    """The message as one line of JSON, newline included."""
    plain = MessageToDict(
        message, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
    )
    return json.dumps(plain, ensure_ascii=False, sort_keys=True) + "\n"
