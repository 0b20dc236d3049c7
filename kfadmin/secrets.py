"""Encryption at rest for secrets kept in the database (AppSecret, tokens, AES keys).

Fernet (AES-128-CBC + HMAC-SHA256) with a key from FIELD_ENCRYPTION_KEY, or derived from
SECRET_KEY when that is unset. Several comma-separated keys may be given: the first
encrypts, all are tried to decrypt, so keys can be rotated.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


def _fernet_key(material: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(material.encode())
        if len(raw) == 32:
            return material.encode()
    except (ValueError, TypeError):
        pass
    # Not a Fernet key itself: derive one, so any long random string works.
    return base64.urlsafe_b64encode(hashlib.sha256(b"kfadmin-field-key:" + material.encode()).digest())


@lru_cache(maxsize=4)
def _cipher(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY or SECRET_KEY must be set.")
    return MultiFernet([Fernet(_fernet_key(key)) for key in keys])


def cipher() -> MultiFernet:
    keys = tuple(getattr(settings, "FIELD_ENCRYPTION_KEYS", ()) or (settings.SECRET_KEY,))
    return _cipher(keys)


def encrypt(value: str) -> str:
    return cipher().encrypt(value.encode()).decode()


def decrypt(value: str) -> str:
    try:
        return cipher().decrypt(value.encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted: FIELD_ENCRYPTION_KEY (or SECRET_KEY) changed. "
            "Put the old key after the new one in FIELD_ENCRYPTION_KEY."
        ) from None


def mask(value: str, *, keep: int = 4) -> str:
    """What the pages show of a secret: its last characters only."""
    if not value:
        return ""
    return "•" * 8 + value[-keep:] if len(value) > keep * 2 else "•" * 8


class EncryptedTextField(models.TextField):
    """A text column holding Fernet ciphertext; Python code sees the clear text."""

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(value)
