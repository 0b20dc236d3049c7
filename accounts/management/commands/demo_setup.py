"""Prepares the embedded demo: a supervisor login kept in `.local/demo_login`, the demo
official account pointing at the bundled emulator, and the emulator's message push
pointing back at kfadmin's callback receiver.

Idempotent: `make run` calls it on every start.
"""

import secrets
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError

from accounts.clients import emulator_callback_set
from accounts.models import Membership, OfficialAccount, SyncState
from accounts.services import SYNC_TASKS
from accounts.tasks import connect_emulator_callback_task
from kfadmin.emulator import (
    DEMO_APPID,
    DEMO_CALLBACK_TOKEN,
    DEMO_ENCODING_AES_KEY,
    DEMO_NAME,
    DEMO_ORIGINAL_ID,
    DEMO_SECRET,
    DEMO_WECHAT_ID,
)
from kfadmin.wechat import WeChatError, WeChatRetryableError

DEMO_USERNAME = "supervisor"
DEMO_HISTORY_DAYS = 30


# What publishing to a broker that cannot be reached raises.
BROKER_DOWN: tuple[type[BaseException], ...] = (KombuOperationalError, ConnectionError, OSError)


class Command(BaseCommand):
    help = "Create the demo supervisor login and the demo official account (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--web-url",
            default="http://127.0.0.1:8000",
            help="Where kfadmin answers, for the emulator's message push (default %(default)s).",
        )
        parser.add_argument(
            "--callback-mode",
            default="safe",
            choices=OfficialAccount.CallbackMode.values,
            help="How the emulator pushes: plaintext, compatible or safe (AES) mode.",
        )

    def handle(self, *args, **options) -> None:
        user = self._demo_user()
        account = self._demo_account(user, options["callback_mode"])
        self._connect_callback(account, options["web_url"].rstrip("/"), options["callback_mode"])
        self._copy_library(account)

    def _demo_user(self):
        login_file = settings.BASE_DIR / ".local" / "demo_login"
        user_model = get_user_model()
        user = user_model.objects.filter(username=DEMO_USERNAME).first()
        if user is None or not login_file.exists():
            password = secrets.token_urlsafe(9)
            if user is None:
                user = user_model(username=DEMO_USERNAME, is_staff=True, is_superuser=True)
            user.set_password(password)
            user.save()
            login_file.parent.mkdir(parents=True, exist_ok=True)
            login_file.write_text(f"{DEMO_USERNAME} / {password}\n")
            login_file.chmod(0o600)
        self.stdout.write(f"Demo login: {login_file.read_text().strip()}")
        return user

    @transaction.atomic
    def _demo_account(self, user, callback_mode: str) -> OfficialAccount:
        api_base_url = f"http://127.0.0.1:{settings.EMULATOR_PORT}"
        account, created = OfficialAccount.objects.update_or_create(
            appid=DEMO_APPID,
            defaults={
                "name": DEMO_NAME,
                "secret": DEMO_SECRET,
                "wechat_id": DEMO_WECHAT_ID,
                "original_id": DEMO_ORIGINAL_ID,
                "callback_token": DEMO_CALLBACK_TOKEN,
                "encoding_aes_key": DEMO_ENCODING_AES_KEY,
                # The receiver holds the account to the mode the emulator pushes in.
                "callback_mode": callback_mode,
                "api_base_url": api_base_url,
                "token_endpoint": OfficialAccount.TokenEndpoint.STABLE,
                "is_active": True,
                # The emulator starts afresh on every run: a stored token is from a
                # previous one.
                "access_token": "",
                "access_token_expires_at": None,
            },
        )
        Membership.objects.update_or_create(
            user=user, official_account=account, defaults={"role": Membership.Role.SUPERVISOR}
        )
        # The emulator holds 30 days of demo history: let the first history sync walk
        # all of it (a real account would use `manage.py backfill_history`).
        SyncState.objects.get_or_create(
            official_account=account,
            job=SyncState.Job.HISTORY,
            defaults={"cursor": timezone.now() - timedelta(days=DEMO_HISTORY_DAYS)},
        )
        verb = "Created" if created else "Updated"
        self.stdout.write(f"{verb} the demo official account {DEMO_NAME} ({DEMO_APPID}) on {api_base_url}.")
        return account

    def _copy_library(self, account: OfficialAccount) -> None:
        """The demo's media library at once, not at beat's first run 15 minutes in
        (the task is named: accounts does not import messaging)."""
        try:
            current_app.send_task(SYNC_TASKS[SyncState.Job.LIBRARY], args=[account.pk], countdown=20, expires=600)
        except BROKER_DOWN as exc:
            self.stdout.write(f"The media library will be copied at the next scheduled run ({exc}).")

    def _connect_callback(self, account: OfficialAccount, web_url: str, mode: str) -> None:
        url = web_url + reverse("wechat_callback", kwargs={"appid": account.appid})
        try:
            emulator_callback_set(account=account, url=url, mode=mode)
        except WeChatRetryableError:
            # `make run` starts the emulator after this command: the worker does it.
            connect_emulator_callback_task.apply_async(args=[account.pk, url, mode], expires=600)
            self.stdout.write("The emulator is not up yet; the worker will point its message push at " + url)
        except WeChatError as exc:
            self.stdout.write(f"The emulator's message push was not set: {exc.explanation}")
        else:
            self.stdout.write(f"The emulator pushes messages to {url} ({mode} mode).")
