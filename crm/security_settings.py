"""The settings of who may call a server and how (tokens, TLS, limits), of personal data keys, and
of seals: declared apart from the stores' and processes' settings in crm.settings, which lists
them all.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from crm.setting import (
    DATA_DIR_MARK,
    Setting,
    parse_choice,
    parse_seconds,
    parse_text,
    parse_whole,
)


def _on(text: str) -> bool:
    return parse_choice("on", "off")(text) == "on"


def _reflection_open(text: str) -> bool:
    return parse_choice("authenticated", "open")(text) == "open"


def _optional_path(what: str) -> Callable[[str], Path | None]:
    def parse(text: str) -> Path | None:
        if not text:
            return None
        path = Path(text)
        if not path.is_file():
            raise ValueError(f"no file {text!r}; give the path of {what}, or nothing")
        return path

    return parse


KEY_STORE_URL = Setting(
    name="key_store_url",
    flag="--key-store-url",
    env="CRM_KEY_STORE_URL",
    default=f"sqlite:///{DATA_DIR_MARK}/keys.db",
    parse=parse_text,
    help="where customers' data keys live, apart from the events (deleting one forgets its"
    " customer): sqlite:///<path>, or postgresql://<user>@<host>:<port>/<database>",
    metavar="URL",
)

MASTER_KEY_FILE = Setting(
    name="master_key_file",
    flag="--master-key-file",
    env="CRM_MASTER_KEY_FILE",
    default="",
    parse=_optional_path("a master key file (base64 of 32 random bytes)"),
    help="the master key that wraps customers' data keys: a file holding the base64 of 32"
    " random bytes; none: a development key generated on first start at"
    f" {DATA_DIR_MARK}/dev-personal-data-master.key",
    metavar="FILE",
)

PERSONAL_DATA = (KEY_STORE_URL, MASTER_KEY_FILE)
"""What a process that reads or writes personal data needs to seal and open it."""

AUTH = Setting(
    name="auth",
    flag="--auth",
    env="CRM_AUTH",
    default="jwt",
    parse=parse_choice("jwt", "off"),
    help="jwt: every call but health checks needs a bearer token (or a client certificate);"
    " off: nobody is asked (development only; a warning is logged at start)",
    metavar="{jwt,off}",
)

TOKEN_KEYS = Setting(
    name="token_keys",
    flag="--token-keys",
    env="CRM_TOKEN_KEYS",
    default="",
    parse=_optional_path("a JWKS file or a PEM public key"),
    help="the keys bearer tokens are checked with: a JWKS file (RS256, ES256, HS256 keys) or a"
    " PEM public key (RS256, ES256); none: an HS256 development secret generated on first"
    f" start at {DATA_DIR_MARK}/dev-token-key.jwks.json, which crm-token signs with",
    metavar="FILE",
)

TOKEN_AUDIENCE = Setting(
    name="token_audience",
    flag="--token-audience",
    env="CRM_TOKEN_AUDIENCE",
    default="crm",
    parse=parse_text,
    help="the audience (aud claim) every bearer token must name",
    metavar="TEXT",
)

TOKEN_ISSUER = Setting(
    name="token_issuer",
    flag="--token-issuer",
    env="CRM_TOKEN_ISSUER",
    default="",
    parse=parse_text,
    help="the issuer (iss claim) every bearer token must name; none: not checked",
    metavar="TEXT",
)

TLS = Setting(
    name="tls",
    flag="--tls",
    env="CRM_TLS",
    default="on",
    parse=_on,
    help="on: the server speaks TLS only; off: plaintext (development only; a warning is"
    " logged at start)",
    metavar="{on,off}",
)

TLS_CERT = Setting(
    name="tls_cert",
    flag="--tls-cert",
    env="CRM_TLS_CERT",
    default="",
    parse=_optional_path("a PEM certificate chain"),
    help="the server's PEM certificate chain (with --tls-key); none: a self-signed one"
    f" generated on first start at {DATA_DIR_MARK}/tls/server.crt",
    metavar="FILE",
)

TLS_KEY = Setting(
    name="tls_key",
    flag="--tls-key",
    env="CRM_TLS_KEY",
    default="",
    parse=_optional_path("a PEM private key"),
    help="the private key of --tls-cert (PEM)",
    metavar="FILE",
)

TLS_CLIENT_CA = Setting(
    name="tls_client_ca",
    flag="--tls-client-ca",
    env="CRM_TLS_CLIENT_CA",
    default="",
    parse=_optional_path("PEM CA certificates"),
    help="mutual TLS: every connection must show a client certificate signed by these CAs;"
    " one without a bearer token is the service its common name names",
    metavar="FILE",
)

MAX_REQUEST_BYTES = Setting(
    name="max_request_bytes",
    flag="--max-request-bytes",
    env="CRM_MAX_REQUEST_BYTES",
    default="262144",
    parse=parse_whole(1024),
    help="the largest request message accepted; larger ones get RESOURCE_EXHAUSTED",
    metavar="BYTES",
)

MAX_CALLS_PER_CALLER = Setting(
    name="max_calls_per_caller",
    flag="--max-calls-per-caller",
    env="CRM_MAX_CALLS_PER_CALLER",
    default="64",
    parse=parse_whole(1),
    help="calls one caller may have in progress at once; more get RESOURCE_EXHAUSTED",
    metavar="N",
)

MAX_WATCHES_PER_CALLER = Setting(
    name="max_watches_per_caller",
    flag="--max-watches-per-caller",
    env="CRM_MAX_WATCHES_PER_CALLER",
    default="8",
    parse=parse_whole(1),
    help="WatchTimeline streams one caller may keep open at once; more get RESOURCE_EXHAUSTED",
    metavar="N",
)

REFLECTION = Setting(
    name="reflection_open",
    flag="--reflection",
    env="CRM_REFLECTION",
    default="authenticated",
    parse=_reflection_open,
    help="authenticated: reflection needs a credential like any call; open: anyone may list"
    " the services (development)",
    metavar="{authenticated,open}",
)


def _key_path(text: str) -> Path:
    if not text:
        raise ValueError("give the path of the seal key file")
    return Path(text)


SEAL_KEY_FILE = Setting(
    name="seal_key_file",
    flag="--seal-key",
    env="CRM_SEAL_KEY",
    default=f"{DATA_DIR_MARK}/dev-seal-key.pem",
    parse=_key_path,
    help="the Ed25519 private key (PEM, PKCS#8) seals are signed with; created on first start"
    " if the file is missing (development); its public half is served by ListSeals",
    metavar="FILE",
)

SEAL_EVERY_EVENTS = Setting(
    name="seal_every_events",
    flag="--seal-every-events",
    env="CRM_SEAL_EVERY_EVENTS",
    default="1000",
    parse=parse_whole(0),
    help="seal the global order after this many new events (0: not by count)",
    metavar="N",
)

SEAL_EVERY_SECONDS = Setting(
    name="seal_every_seconds",
    flag="--seal-every-seconds",
    env="CRM_SEAL_EVERY_SECONDS",
    default="300",
    parse=parse_seconds(0, inclusive=True),
    help="seal new events once the newest seal is this old (0: not by time); both 0: no sealer",
    metavar="SECONDS",
)

SEALING = (SEAL_KEY_FILE, SEAL_EVERY_EVENTS, SEAL_EVERY_SECONDS)
"""What the server's sealer reads (crm.sealer)."""

SECURITY = (
    AUTH,
    TOKEN_KEYS,
    TOKEN_AUDIENCE,
    TOKEN_ISSUER,
    TLS,
    TLS_CERT,
    TLS_KEY,
    TLS_CLIENT_CA,
    MAX_REQUEST_BYTES,
    MAX_CALLS_PER_CALLER,
    MAX_WATCHES_PER_CALLER,
    REFLECTION,
)
"""What the gRPC server reads to decide who may call it, how, and how much."""
