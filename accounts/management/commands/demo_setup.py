"""Prepares the embedded demo: a supervisor login kept in `.local/demo_login`."""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_USERNAME = "supervisor"


class Command(BaseCommand):
    help = "Create the demo supervisor login (idempotent) and print it."

    def handle(self, *args, **options) -> None:
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
