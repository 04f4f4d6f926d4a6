"""`crm-token`: a signed bearer token for development, with the key the server checks it with.

Prints the token alone on stdout, so `TOKEN=$(crm-token --role agent --subject agent-7)` works.
It signs only with an HS256 secret (the development key the server generates in its data dir, or
a JWKS holding one); production tokens come from the identity provider that holds the private
keys.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from crm.identity import ROLE_NAMES, Role, parse_actor
from crm.security_settings import TOKEN_AUDIENCE, TOKEN_ISSUER, TOKEN_KEYS
from crm.settings import DATA_DIR
from crm.startup import SettingsParser, exit_on_error
from crm.tokens import issue
from services.bootstrap_security import build_token_signer

PROG = "crm-token"
USES = (DATA_DIR, TOKEN_KEYS, TOKEN_AUDIENCE, TOKEN_ISSUER)


def main(argv: list[str] | None = None) -> None:
    parser = SettingsParser(PROG, __doc__, USES)
    token = parser.add_argument_group("token")
    token.add_argument("--role", required=True, choices=ROLE_NAMES, help="the caller's role")
    token.add_argument("--subject", required=True, help="who the caller is, e.g. agent-7")
    token.add_argument(
        "--team", action="append", default=[], help="a team of the caller (repeatable)"
    )
    token.add_argument(
        "--acting-for", default="", type=_actor, help="kind:id a bot or service acts for"
    )
    token.add_argument("--hours", type=float, default=8.0, help="how long it is valid")
    with exit_on_error(PROG):
        settings, args = parser.settings(argv)
        keys, rules = build_token_signer(settings)
        print(
            issue(
                keys,
                rules,
                subject=args.subject,
                role=Role(args.role),
                teams=args.team,
                acting_for=args.acting_for,
                lifetime=timedelta(hours=args.hours),
            )
        )


def _actor(text: str) -> str:
    try:
        if text:
            parse_actor(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


if __name__ == "__main__":
    main()
