"""Check a kept seal's signature outside the system: `python verify_seal.py SEAL.json KEY.pem`.

SEAL.json and KEY.pem are what `crm-audit seals --save DIR` wrote. Needs `cryptography` (any
Ed25519 implementation would do); nothing of this project. Exit 0: the key signed exactly this
seal. Exit 1: it did not (the seal was altered, or another key signed it), or the files are not
a seal and an Ed25519 public key.
"""

import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

SIGNED = ("position", "count", "head", "previous_position", "sealed_at", "key_id")


def problem(seal: dict[str, object], key: object) -> str | None:
    if not isinstance(key, Ed25519PublicKey):
        return "the key is not an Ed25519 public key"
    key_id = hashlib.sha256(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]
    if seal.get("key_id") != key_id:
        return f"the seal names key {seal.get('key_id')!r}, this key is {key_id!r}"
    fields = {name: seal[name] for name in SIGNED}
    signed = (
        b"crm-seal-v1\n"
        + json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )
    try:
        key.verify(bytes.fromhex(str(seal["signature"])), signed)
    except (InvalidSignature, ValueError):
        return "the signature does not match the seal: it was altered or forged"
    return None


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: python verify_seal.py SEAL.json KEY.pem (as crm-audit seals --save wrote)")
    try:
        with open(sys.argv[1], encoding="utf-8") as file:
            seal = json.load(file)
        with open(sys.argv[2], "rb") as file:
            key = load_pem_public_key(file.read())
        found = problem(seal, key)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        found = f"cannot check: {type(exc).__name__}: {exc}"
    if found:
        sys.exit(found)
    where = f"seal at global position {seal['position']}"
    print(f"ok: {where}: {seal['count']} events, head {seal['head']}")


if __name__ == "__main__":
    main()
