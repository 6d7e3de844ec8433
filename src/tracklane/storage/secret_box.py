"""Webhook signing secrets at rest: sealed with `TRACKLANE_SECRETS_KEY` (Fernet: AES-CBC and HMAC-SHA256).

A sealed value is `fernet:<token>`. Without a key, secrets are kept as they are (and the process warns at
start-up). A key set later still opens the secrets stored before it; they are sealed at their next rotation.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

_PREFIX = "fernet:"


class FernetBox:
    """Implements `tracklane.services.ports.SecretBox` with a key derived from the operator's passphrase."""

    def __init__(self, passphrase: str) -> None:
        key = base64.urlsafe_b64encode(hashlib.sha256(passphrase.encode()).digest())
        self._fernet = Fernet(key)

    def seal(self, secret: str) -> str:
        return _PREFIX + self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        if not sealed.startswith(_PREFIX):
            return sealed
        try:
            return self._fernet.decrypt(sealed[len(_PREFIX) :].encode()).decode()
        except InvalidToken:
            raise ValueError("a webhook secret was sealed with another TRACKLANE_SECRETS_KEY") from None


class PlainBox:
    """No key configured: secrets are stored as they are."""

    def seal(self, secret: str) -> str:
        return secret

    def open(self, sealed: str) -> str:
        if sealed.startswith(_PREFIX):
            raise ValueError("a webhook secret is sealed but TRACKLANE_SECRETS_KEY is not set")
        return sealed
