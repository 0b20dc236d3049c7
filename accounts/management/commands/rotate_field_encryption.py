"""Re-encrypt every secret stored in the database under the first FIELD_ENCRYPTION_KEY."""

from __future__ import annotations

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from kfadmin.secrets import EncryptedTextField


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret (AppSecrets, tokens, AES keys) under the first key of "
        "FIELD_ENCRYPTION_KEY. Run it after putting a new key first, or once after upgrading "
        "from a release that derived the key from SECRET_KEY; then older keys can be removed."
    )

    def handle(self, *args, **options) -> None:
        total = 0
        for model in apps.get_models():
            fields = [f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
            if not fields:
                continue
            with transaction.atomic():
                # Reading decrypts with any known key; writing encrypts with the first.
                # The row lock keeps a token refreshed meanwhile from being overwritten.
                rows = model._default_manager.select_for_update().values_list("pk", *fields)
                for pk, *values in rows:
                    model._default_manager.filter(pk=pk).update(**dict(zip(fields, values, strict=True)))
                    total += 1
            self.stdout.write(f"{model._meta.label}: {len(rows)} rows re-encrypted")
        self.stdout.write(self.style.SUCCESS(f"{total} rows now use the first FIELD_ENCRYPTION_KEY."))
