"""The composition root's security half: credentials, TLS, personal-data keys and the seal key,
read from the settings; development keys and a self-signed certificate are generated in the data
dir on first start when none are configured. services.bootstrap builds every process with them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from crm.personal.cipher import PersonalData
from crm.personal.factory import open_key_store
from crm.personal.keys import (
    DEV_MASTER_KEY_FILE,
    MasterKey,
    ensure_master_key_file,
    load_master_key,
)
from crm.sealer import load_seal_key
from crm.seals import SealKey
from crm.security_settings import (
    KEY_STORE_URL,
    MASTER_KEY_FILE,
    SEAL_KEY_FILE,
    TLS_CERT,
    TLS_CLIENT_CA,
    TLS_KEY,
    TOKEN_KEYS,
)
from crm.setting import SettingError
from crm.settings import DATA_DIR, Settings
from crm.startup import attributed_to
from crm.tls import check_certificates, check_pair, ensure_self_signed
from crm.tokens import DEV_KEY_FILE, KeySet, TokenRules, ensure_dev_key, load_key_set
from crm.urls import SQLITE_PREFIX, require_writable_directory
from services.authentication import Authenticator
from services.caller_limits import Limits
from services.server_security import ServerSecurity, TlsFiles

log = logging.getLogger("crm.bootstrap")


def dev_token_key(settings: Settings) -> Path:
    """Where the development token secret lives when no key set is configured."""
    return settings.data_dir / DEV_KEY_FILE


def build_security(settings: Settings) -> ServerSecurity:
    """Credentials, TLS and limits from the settings; development keys and a self-signed
    certificate are generated in the data dir on first start when none are configured."""
    tls = _tls(settings)
    authenticator = None
    if settings.auth != "off":
        if settings.token_keys is None:
            with attributed_to(DATA_DIR):
                ensure_dev_key(dev_token_key(settings))
        keys = _key_set(settings.token_keys or dev_token_key(settings))
        rules = TokenRules(settings.token_audience, settings.token_issuer)
        authenticator = Authenticator(keys, rules, settings.tls_client_ca is not None)
    return ServerSecurity(
        authenticator,
        tls,
        Limits(settings.max_calls_per_caller, settings.max_watches_per_caller),
        settings.max_request_bytes,
        settings.reflection_open,
    )


def announce_security(settings: Settings, security: ServerSecurity) -> None:
    """Log how callers get in, once the server is built (a wrong setting stays one line)."""
    if security.authenticator is None:
        log.warning("authentication is off (--auth off): every caller may call every RPC")
    elif settings.token_keys is None:
        log.info("development bearer tokens: crm-token --role agent --subject agent-7 --team t1")
    if security.tls is None:
        log.warning("TLS is off (--tls off): calls and tokens cross the network in plaintext")
    elif settings.tls_cert is None:
        certificate = dev_certificate(settings)[0]
        log.info("TLS with a self-signed certificate; clients trust %s", certificate)
    if settings.master_key_file is None:
        log.info(
            "personal data sealed under the development master key %s: keep it with the key"
            " store, and give --master-key-file in production",
            dev_master_key(settings),
        )


def build_token_signer(settings: Settings) -> tuple[KeySet, TokenRules]:
    """`crm-token`: the key set the server checks tokens with, which must hold an HS256 secret."""
    keys_file = settings.token_keys or dev_token_key(settings)
    if not keys_file.exists():
        raise SettingError(
            DATA_DIR,
            f"no development key {str(keys_file)!r} yet; start crm-server (make run) once with"
            " this data dir to create it, or give --token-keys",
        )
    keys = _key_set(keys_file)
    if keys.signing_key is None:
        raise SettingError(TOKEN_KEYS, "holds public keys only; crm-token signs with HS256 secrets")
    return keys, TokenRules(settings.token_audience, settings.token_issuer)


def _key_set(path: Path) -> KeySet:
    try:
        return load_key_set(path)
    except ValueError as error:
        raise SettingError(TOKEN_KEYS, str(error)) from None


def _tls(settings: Settings) -> TlsFiles | None:
    if not settings.tls:
        if settings.tls_client_ca is not None:
            raise SettingError(TLS_CLIENT_CA, "needs TLS; give --tls on, or no client CA")
        return None
    if (settings.tls_cert is None) != (settings.tls_key is None):
        raise SettingError(TLS_KEY, "give --tls-cert and --tls-key together, or neither")
    cert, key = settings.tls_cert, settings.tls_key
    if cert is None or key is None:
        cert, key = dev_certificate(settings)
        with attributed_to(DATA_DIR):
            ensure_self_signed(cert, key)
    with attributed_to(TLS_CERT, cert):
        chain, private = cert.read_bytes(), key.read_bytes()
    try:
        check_pair(chain, private)
    except ValueError as error:
        raise SettingError(TLS_CERT, f"{cert}: {error}") from None
    if settings.tls_client_ca is None:
        return TlsFiles(chain, private)
    with attributed_to(TLS_CLIENT_CA, settings.tls_client_ca):
        client_ca = settings.tls_client_ca.read_bytes()
    try:
        check_certificates(client_ca)
    except ValueError as error:
        raise SettingError(TLS_CLIENT_CA, f"{settings.tls_client_ca} {error}") from None
    return TlsFiles(chain, private, client_ca)


def dev_certificate(settings: Settings) -> tuple[Path, Path]:
    """The self-signed certificate and key generated in the data dir, when none is configured."""
    return settings.data_dir / "tls" / "server.crt", settings.data_dir / "tls" / "server.key"


def load_seal_key_of(settings: Settings) -> SealKey:
    """The key seals are signed with (a development one is created on first start)."""
    try:
        return load_seal_key(settings.seal_key_file)
    except (OSError, ValueError) as exc:
        raise SettingError(SEAL_KEY_FILE, str(exc)) from None


def build_personal_data(settings: Settings) -> PersonalData:
    """The field cipher over the configured key store; with no master key configured, a
    development one is generated in the data dir on first start (like the token secret)."""
    with attributed_to(MASTER_KEY_FILE, settings.master_key_file):
        master = _master_key(settings)
    with attributed_to(KEY_STORE_URL):
        data_dir_writable(settings, settings.key_store_url)
        try:
            keys = open_key_store(settings.key_store_url, KEY_STORE_URL.name, master)
        except ValueError as error:
            raise SettingError(KEY_STORE_URL, str(error)) from None
    return PersonalData(keys, digest_key=master.derived("crm command digest v1"))


def dev_master_key(settings: Settings) -> Path:
    """Where the development master key lives when none is configured."""
    return settings.data_dir / DEV_MASTER_KEY_FILE


def _master_key(settings: Settings) -> MasterKey:
    path = settings.master_key_file
    if path is None:
        path = dev_master_key(settings)
        if not path.exists():
            with attributed_to(DATA_DIR):
                ensure_master_key_file(path)

    try:
        return load_master_key(path)
    except ValueError as error:
        raise SettingError(MASTER_KEY_FILE, f"{path}: {error}") from None


def data_dir_writable(settings: Settings, url: str) -> None:
    """A store file in a read-only data dir is the data dir's error: that is the setting to fix."""
    if not url.startswith(SQLITE_PREFIX):
        return
    directory = Path(url[len(SQLITE_PREFIX) :]).parent
    if directory.is_dir() and directory.resolve() == settings.data_dir.resolve():
        with attributed_to(DATA_DIR):
            require_writable_directory(settings.data_dir, DATA_DIR.name)
