"""Secrets at rest: HKDF-derived Fernet keys, rotation, and values written before HKDF."""

from __future__ import annotations

import base64
import hashlib
import io

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from accounts.models import OfficialAccount
from kfadmin import secrets
from tests.factories import OfficialAccountFactory

OLD = "old-key-material-0123456789abcdefghijklmnop"
NEW = "new-key-material-0123456789abcdefghijklmnop"


def stored_secret(account: OfficialAccount) -> str:
    """The ciphertext in the column, as a database dump shows it."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT secret FROM {OfficialAccount._meta.db_table} WHERE id = %s", [account.pk])
        return cursor.fetchone()[0]


def test_the_fernet_key_is_derived_with_hkdf_not_used_or_hashed_as_given():
    material = Fernet.generate_key().decode()

    key = secrets.fernet_key(material)

    assert key != material.encode()
    assert key != base64.urlsafe_b64encode(hashlib.sha256(b"kfadmin-field-key:" + material.encode()).digest())
    assert len(base64.urlsafe_b64decode(key)) == 32
    assert secrets.fernet_key(material) == key and secrets.fernet_key(material + "x") != key


def test_the_first_key_encrypts_and_every_key_decrypts(settings):
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    token = secrets.encrypt("appsecret")

    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]

    assert secrets.decrypt(token) == "appsecret"
    assert not secrets.is_current(token)
    assert secrets.is_current(secrets.encrypt("appsecret"))


def test_a_value_under_a_removed_key_stops_with_a_sentence(settings):
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    token = secrets.encrypt("appsecret")
    settings.FIELD_ENCRYPTION_KEYS = [NEW]

    with pytest.raises(ImproperlyConfigured, match="Put the old key after the new one"):
        secrets.decrypt(token)


def test_secret_key_does_not_open_what_the_field_key_encrypted(settings):
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    token = secrets.encrypt("appsecret")

    for legacy in (
        base64.urlsafe_b64encode(hashlib.sha256(b"kfadmin-field-key:" + settings.SECRET_KEY.encode()).digest()),
        secrets.fernet_key(settings.SECRET_KEY),
    ):
        with pytest.raises(InvalidToken):
            Fernet(legacy).decrypt(token.encode())


@pytest.mark.parametrize("how", ["sha256 of the key", "the key as a Fernet key", "sha256 of SECRET_KEY"])
def test_values_written_before_hkdf_still_decrypt(settings, how):
    material = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [material]
    source = settings.SECRET_KEY if how == "sha256 of SECRET_KEY" else material
    if how == "the key as a Fernet key":
        legacy_key = material.encode()
    else:
        legacy_key = base64.urlsafe_b64encode(hashlib.sha256(b"kfadmin-field-key:" + source.encode()).digest())
    token = Fernet(legacy_key).encrypt(b"appsecret").decode()

    assert secrets.decrypt(token) == "appsecret"


@pytest.mark.django_db
def test_rotation_re_encrypts_every_stored_secret_under_the_first_key(settings):
    settings.FIELD_ENCRYPTION_KEYS = [OLD]
    account = OfficialAccountFactory(secret="s3cret-app", callback_token="tok", encoding_aes_key="")
    before = stored_secret(account)

    settings.FIELD_ENCRYPTION_KEYS = [NEW, OLD]
    call_command("rotate_field_encryption", stdout=io.StringIO())

    after = stored_secret(account)
    assert after != before and secrets.is_current(after)
    settings.FIELD_ENCRYPTION_KEYS = [NEW]  # the old key can go now
    account = OfficialAccount.objects.get(pk=account.pk)
    assert (account.secret, account.callback_token, account.encoding_aes_key) == ("s3cret-app", "tok", "")


@pytest.mark.django_db
def test_rotation_moves_pre_hkdf_values_off_secret_key(settings):
    settings.FIELD_ENCRYPTION_KEYS = [NEW]
    account = OfficialAccountFactory(secret="s3cret-app")
    legacy = base64.urlsafe_b64encode(hashlib.sha256(b"kfadmin-field-key:" + settings.SECRET_KEY.encode()).digest())
    OfficialAccount.objects.filter(pk=account.pk).update(secret="placeholder")
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {OfficialAccount._meta.db_table} SET secret = %s WHERE id = %s",
            [Fernet(legacy).encrypt(b"s3cret-app").decode(), account.pk],
        )

    call_command("rotate_field_encryption", stdout=io.StringIO())

    assert secrets.is_current(stored_secret(account))
    assert OfficialAccount.objects.get(pk=account.pk).secret == "s3cret-app"
