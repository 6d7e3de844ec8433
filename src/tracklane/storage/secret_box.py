"""Secrets at rest: advertisers' postback tokens, Segment sources' webhook secrets and webhook endpoints'
signing secrets are stored sealed with the secrets key (Fernet: AES-128-CBC and HMAC-SHA256), never in clear.

A sealed value is `fernet:<token>`. The repositories seal postback tokens and Segment webhook secrets as
they write them and return them opened, so the services use and compare them (in constant time) as
before; a postback token must also be found by its value, so its row keeps a keyed hash (HMAC-SHA256 with
a key derived from the secrets key) as the lookup column. Webhook signing secrets are sealed by the webhook
service and opened only to sign, through the `SecretBox` port.

The key is `TRACKLANE_SECRETS_KEY`. Without it:
- on a SQLite file, a key is generated once and kept beside the database in `<database>.key` (mode 0600),
  so the demo and a single machine need no configuration; back the two files up together;
- on PostgreSQL (production: many processes on many machines) the process refuses to start, since keys
  generated on each machine would differ.
The database records a fingerprint of its key (`secrets_key`), and a process whose key differs refuses
to start, so a wrong or lost key never seals new secrets beside old ones it cannot open.

The repositories find the box on their connection: `bind` puts it in the engine's execution options. A
database built directly on engines without one (tests, tools) uses a key made for this process only.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import os
import secrets
import stat
import time
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Connection, Engine, inspect, select
from sqlalchemy.engine import make_url

from tracklane.storage.schema import secrets_key

log = logging.getLogger("tracklane")

PREFIX = "fernet:"
KEY_FILE_SUFFIX = ".key"
_OPTION = "tracklane_secrets_box"
_OPENED_CACHE = 4096
_KEY_FILE_WAIT = 2.0


class SecretsKeyError(RuntimeError):
    """The secrets key is missing, or is not the key this database's secrets are sealed with."""


class FernetBox:
    """Implements `tracklane.services.ports.SecretBox`, plus the keyed hash used to look secrets up."""

    def __init__(self, passphrase: str) -> None:
        raw = passphrase.encode()
        # The Fernet key is the passphrase's SHA-256, as in earlier releases, so values sealed then still open.
        self._fernet = Fernet(base64.urlsafe_b64encode(hashlib.sha256(raw).digest()))
        self._lookup_key = hmac.new(raw, b"tracklane secrets: lookup v1", hashlib.sha256).digest()
        self.fingerprint = hmac.new(raw, b"tracklane secrets: key check v1", hashlib.sha256).hexdigest()[:32]
        self._opened: dict[str, str] = {}

    def seal(self, secret: str) -> str:
        return PREFIX + self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        opened = self._opened.get(sealed)
        if opened is not None:
            return opened
        if not sealed.startswith(PREFIX):
            raise SecretsKeyError("a stored secret is not sealed")
        try:
            opened = self._fernet.decrypt(sealed[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            raise SecretsKeyError("a stored secret was sealed with another TRACKLANE_SECRETS_KEY") from None
        if len(self._opened) >= _OPENED_CACHE:
            self._opened.clear()
        self._opened[sealed] = opened
        return opened

    def digest(self, secret: str) -> str:
        """The lookup hash of a secret: 64 hex characters, useless without the key."""
        return hmac.new(self._lookup_key, secret.encode(), hashlib.sha256).hexdigest()


def bind(engine: Engine, box: FernetBox) -> Engine:
    """The engine whose connections carry `box` for the repositories (it shares the engine's pool)."""
    return engine.execution_options(**{_OPTION: box})


def box_of(connection: Connection) -> FernetBox:
    box = connection.get_execution_options().get(_OPTION)
    return box if isinstance(box, FernetBox) else _process_box()


def resolve_key(database_url: str, configured: str | None, admin: Engine) -> FernetBox:
    """The box of this process: the configured key, else the key file beside a SQLite database (made on
    the first start), else a refusal to start. `admin` reads the database's key fingerprint before a new
    key file is made, so that a lost key file is never silently replaced."""
    if configured is not None:
        return FernetBox(configured)
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise SecretsKeyError(
            "TRACKLANE_SECRETS_KEY is not set. With PostgreSQL it is required: it encrypts postback tokens "
            "and webhook secrets at rest, and every server and worker must use the same one. Generate one "
            "with `python -c 'import secrets; print(secrets.token_urlsafe(32))'` and keep it safe."
        )
    if url.database in (None, "", ":memory:"):
        return _process_box()
    path = Path(url.database + KEY_FILE_SUFFIX)
    if not path.exists():
        recorded = recorded_fingerprint(admin)
        if recorded is not None:
            raise SecretsKeyError(
                f"{url.database} holds secrets sealed with a key (fingerprint {recorded}) but its key file "
                f"{path} is missing: put it back, or set TRACKLANE_SECRETS_KEY to that key"
            )
        _create_key_file(path)
    return FernetBox(_read_key_file(path))


def recorded_fingerprint(engine: Engine) -> str | None:
    """The fingerprint of the key this database's secrets are sealed with, if one is recorded."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(secrets_key.name):
            return None
        return connection.execute(select(secrets_key.c.fingerprint)).scalar()


def check_key(connection: Connection, box: FernetBox) -> None:
    """Record this key's fingerprint on first use; refuse a key that is not the recorded one."""
    recorded = connection.execute(select(secrets_key.c.fingerprint)).scalar()
    if recorded is None:
        connection.execute(secrets_key.insert().values(id=1, fingerprint=box.fingerprint))
    elif not hmac.compare_digest(recorded, box.fingerprint):
        raise SecretsKeyError(
            f"the secrets key of this process (fingerprint {box.fingerprint}, from TRACKLANE_SECRETS_KEY or the "
            f"key file beside a SQLite database) is not the key this database's secrets are sealed with "
            f"(fingerprint {recorded}); start with that key"
        )


def _create_key_file(path: Path) -> None:
    """Write a new random key, readable by this user only; another process making it at once wins."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(descriptor, "w", encoding="ascii") as file:
        file.write(secrets.token_urlsafe(32) + "\n")
        file.flush()
        os.fsync(file.fileno())
    log.warning(
        "TRACKLANE_SECRETS_KEY is not set: generated the secrets key in %s. Back it up with the database; "
        "without it the stored secrets cannot be opened",
        path,
    )


def _read_key_file(path: Path) -> str:
    deadline = time.monotonic() + _KEY_FILE_WAIT
    while True:  # a key file another process is writing right now is complete within moments
        key = path.read_text(encoding="ascii").strip()
        if len(key) >= 32 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    if len(key) < 32:
        raise SecretsKeyError(f"the secrets key file {path} is damaged (fewer than 32 characters)")
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("the secrets key file %s is readable by other users (mode %o): chmod 600 it", path, mode & 0o777)
    return key


@functools.cache
def _process_box() -> FernetBox:
    return FernetBox(secrets.token_urlsafe(32))
