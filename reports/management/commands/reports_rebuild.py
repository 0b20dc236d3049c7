"""Derive an account's report rollups again from its archive."""

from __future__ import annotations

from datetime import date, datetime

from django.core.management.base import BaseCommand, CommandError

from accounts.models import OfficialAccount
from reports.services import rollups_rebuild


class Command(BaseCommand):
    help = (
        "Rebuild the reports' rollups of one official account from its archive: all of it, "
        "or (with --since) every customer from their last close before that day on."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--account", required=True, help="The official account's AppID.")
        parser.add_argument("--since", help="A day, YYYY-MM-DD, in the account's time zone.")

    def handle(self, *args, **options) -> None:
        account = OfficialAccount.objects.filter(appid=options["account"]).first()
        if account is None:
            raise CommandError(f"No official account has the AppID {options['account']!r}.")
        since = None
        if options["since"]:
            try:
                day = date.fromisoformat(options["since"])
            except ValueError:
                raise CommandError("--since takes a day as YYYY-MM-DD, e.g. 2026-03-01.") from None
            since = datetime.combine(day, datetime.min.time(), tzinfo=account.zone)
        customers, facts = rollups_rebuild(account_id=account.pk, since=since)
        self.stdout.write(f"{account.name}: {customers} customers, {facts} facts derived again.")
