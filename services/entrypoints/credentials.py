"""`crm-credentials`: one development token key and one self-signed certificate, for several
servers to share.

It writes into the data dir what crm-server writes there on a first start when no key set and no
certificate are configured (`dev-token-key.jwks.json`, `tls/server.crt`, `tls/server.key`, the
secrets readable by their owner only), and nothing else. Servers that name these files with
--token-keys, --tls-cert and --tls-key accept the same tokens and show the same certificate, and
crm-token signs with --token-keys pointing at the same key. Files that exist are kept, so running
it again (a compose init service on every `up`) keeps tokens and trust valid.
"""

from __future__ import annotations

import sys

from crm.settings import DATA_DIR, Settings
from crm.startup import SettingsParser, exit_on_error
from crm.tls import LOCAL_NAMES, ensure_self_signed
from crm.tokens import ensure_dev_key
from services.bootstrap_security import dev_certificate, dev_token_key

PROG = "crm-credentials"
USES = (DATA_DIR,)


def parser() -> SettingsParser:
    """Its command line: the data dir, and the names the certificate is valid for."""
    parsed = SettingsParser(PROG, __doc__, USES)
    names = parsed.add_argument_group("certificate")
    names.add_argument(
        "--name",
        action="append",
        default=[],
        help="a host name or address the servers are reached at (repeatable), besides "
        + ", ".join(LOCAL_NAMES),
    )
    return parsed


def main(argv: list[str] | None = None) -> None:
    with exit_on_error(PROG):
        settings, args = parser().settings(argv)
        for line in write(settings, tuple(args.name)):
            sys.stdout.write(line + "\n")


def write(settings: Settings, names: tuple[str, ...]) -> list[str]:
    """Create the key and the certificate unless they exist; one line on each file."""
    key = dev_token_key(settings)
    certificate, private_key = dev_certificate(settings)
    every_name = tuple(dict.fromkeys((*LOCAL_NAMES, *names)))
    key_made = ensure_dev_key(key)
    certificate_made = ensure_self_signed(certificate, private_key, every_name)
    return [
        f"{'wrote' if key_made else 'kept'} {key} (--token-keys)",
        f"{'wrote' if certificate_made else 'kept'} {certificate} (--tls-cert; clients trust it)",
        f"{'wrote' if certificate_made else 'kept'} {private_key} (--tls-key)",
    ]


if __name__ == "__main__":
    main()
