"""API keys are encrypted at rest with Fernet; ENCRYPTION_KEYS makes the key rotatable.

The first key encrypts, every key decrypts. To rotate: put a new key first in
ENCRYPTION_KEYS, keep the old one after it, run ``manage.py rotate_encryption_key``, then
drop the old key. Without ENCRYPTION_KEYS a key is derived from SECRET_KEY.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class UndecryptableSecret(Exception):
    """A stored secret cannot be read with the configured keys."""


def _fernet() -> MultiFernet:
    keys = list(settings.ENCRYPTION_KEYS)
    if not keys:
        digest = hashlib.sha256(b"parley.api-keys:" + settings.SECRET_KEY.encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(key.encode() if isinstance(key, str) else key) for key in keys])


def encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode() if secret else ""


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise UndecryptableSecret(
            "A stored API key cannot be decrypted with the configured ENCRYPTION_KEYS."
        ) from None


def rotate(token: str) -> str:
    return _fernet().rotate(token.encode()).decode() if token else ""
