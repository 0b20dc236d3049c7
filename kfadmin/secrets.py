"""Encryption at rest for secrets kept in the database (AppSecret, tokens, AES keys).

Fernet (AES-128-CBC + HMAC-SHA256). Its keys are derived with HKDF-SHA256 from the key
material in FIELD_ENCRYPTION_KEY (comma-separated, newest first): the first encrypts,
all decrypt, so keys rotate by putting a new one first and running
`manage.py rotate_field_encryption`, which rewrites every stored secret under it.

Values written before HKDF (the material used as a Fernet key, or hashed with SHA-256,
or SECRET_KEY hashed when no key was set) still decrypt, through the legacy keys; the
rotation command re-encrypts them, after which SECRET_KEY no longer opens anything.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

_HKDF_SALT = b"kfadmin field encryption"
_HKDF_INFO = b"fernet key v2"


def fernet_key(material: str) -> bytes:
    """The Fernet key HKDF derives from one key's material."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO).derive(
        material.encode()
    )
    return base64.urlsafe_b64encode(derived)


def _legacy_fernet_keys(material: str) -> list[bytes]:
    """How keys were made before HKDF: a Fernet key used as given, else SHA-256."""
    keys = []
    try:
        if len(base64.urlsafe_b64decode(material.encode())) == 32:
            keys.append(material.encode())
    except (ValueError, TypeError):
        pass
    keys.append(base64.urlsafe_b64encode(hashlib.sha256(b"kfadmin-field-key:" + material.encode()).digest()))
    return keys


@lru_cache(maxsize=4)
def _ciphers(keys: tuple[str, ...], secret_key: str) -> tuple[MultiFernet, MultiFernet]:
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY must be set.")
    current = MultiFernet([Fernet(fernet_key(key)) for key in keys])
    legacy = [key for material in (*keys, secret_key) for key in _legacy_fernet_keys(material)]
    return current, MultiFernet([Fernet(key) for key in legacy])


def cipher() -> MultiFernet:
    """Encrypts with the first configured key; decrypts with any configured key."""
    return _ciphers(tuple(settings.FIELD_ENCRYPTION_KEYS), settings.SECRET_KEY)[0]


def encrypt(value: str) -> str:
    return cipher().encrypt(value.encode()).decode()


def decrypt(value: str) -> str:
    current, legacy = _ciphers(tuple(settings.FIELD_ENCRYPTION_KEYS), settings.SECRET_KEY)
    token = value.encode()
    try:
        return current.decrypt(token).decode()
    except InvalidToken:
        pass
    try:
        return legacy.decrypt(token).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted: FIELD_ENCRYPTION_KEY changed. "
            "Put the old key after the new one in FIELD_ENCRYPTION_KEY."
        ) from None


def is_current(value: str) -> bool:
    """Whether a stored value is encrypted under the first configured key."""
    first = Fernet(fernet_key(settings.FIELD_ENCRYPTION_KEYS[0]))
    try:
        first.decrypt(value.encode())
    except InvalidToken:
        return False
    return True


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
