"""`manage.py backfill_history --account <appid or id> --days N`: the first import.

Imports up to 30 days of chat history (what WeChat keeps) window by window. It is
resumable: interrupt it (Ctrl-C, a crash, a WeChat outage) and run it again to
continue after the last complete window. Progress is drawn on stderr and saved on the
account's backfill SyncState row, where the dashboard shows it.
"""

from __future__ import annotations

import time
from typing import Protocol

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import OfficialAccount, SyncState
from accounts.sync import sync_state_claim, sync_state_release
from kfadmin.wechat import WeChatError
from messaging.sync import LEASE, SyncProgress, history_backfill


class Output(Protocol):
    """What the bar writes to: Django's OutputWrapper (`self.stderr`)."""

    def write(self, msg: str = "", style_func=None, ending: str | None = None) -> None: ...

    def isatty(self) -> bool: ...

    def flush(self) -> None: ...


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class ProgressBar:
    """One line on a terminal, redrawn in place; a line per window elsewhere (logs)."""

    WIDTH = 24

    def __init__(self, stream: Output, *, interactive: bool | None = None, min_interval: float = 0.2):
        self.stream = stream
        self.interactive = stream.isatty() if interactive is None else interactive
        self.min_interval = min_interval
        self._last_draw = 0.0
        self._last_window = -1
        self._width = 0

    def line(self, progress: SyncProgress) -> str:
        filled = int(self.WIDTH * progress.fraction)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        return (
            f"[{bar}] {100 * progress.fraction:5.1f}%  "
            f"windows {progress.windows_done}/{progress.windows_total}  "
            f"records {progress.records_seen:,} ({progress.records_stored:,} new)  "
            f"{progress.rate:,.0f}/s  ETA {_duration(progress.eta_seconds)}"
        )

    def update(self, progress: SyncProgress, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.interactive:
            if not force and now - self._last_draw < self.min_interval:
                return
            text = self.line(progress)
            pad = max(0, self._width - len(text))
            self._write("\r" + text + " " * pad)
            self._width = len(text)
        else:
            if not force and progress.windows_done == self._last_window:
                return
            self._write(self.line(progress) + "\n")
            self._last_window = progress.windows_done
        self.stream.flush()
        self._last_draw = now

    def finish(self, progress: SyncProgress) -> None:
        self.update(progress, force=True)
        if self.interactive:
            self._write("\n")
            self.stream.flush()

    def _write(self, text: str) -> None:
        # Plain text, no colour, no added newline.
        self.stream.write(text, style_func=str, ending="")


class Command(BaseCommand):
    help = "Import the chat history of an official account (resumable; progress on stderr)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", required=True, help="The official account's AppID or id.")
        parser.add_argument(
            "--days", type=float, default=30, help="How many days back to import (WeChat keeps about 30)."
        )
        parser.add_argument(
            "--restart", action="store_true", help="Start over instead of resuming an unfinished backfill."
        )

    def handle(self, *args, account: str, days: float, restart: bool, **options) -> None:
        if not 0 < days <= 60:
            raise CommandError("--days must be more than 0 and at most 60.")
        found = self._account(account)
        job = SyncState.Job.BACKFILL
        token = sync_state_claim(account_id=found.pk, job=job, lease=LEASE)
        if token is None:
            raise CommandError(
                f"A backfill of {found} is already running. Wait for it to finish "
                f"(or for its claim to expire after {int(LEASE.total_seconds() // 60)} minutes)."
            )
        bar = ProgressBar(self.stderr)
        try:
            progress = history_backfill(
                account_id=found.pk,
                days=days,
                restart=restart,
                lease_token=token,
                on_progress=bar.update,
            )
        except WeChatError as exc:
            raise CommandError(
                f"WeChat stopped the backfill: {exc.explanation} Run the command again to resume."
            ) from exc
        except KeyboardInterrupt:
            raise CommandError("Interrupted. Run the command again to resume.") from None
        finally:
            sync_state_release(account_id=found.pk, job=job, token=token)
        bar.finish(progress)
        self.stdout.write(
            f"Backfill of {found} done: {progress.records_seen} records read, "
            f"{progress.records_stored} new, {progress.windows_done} windows "
            f"in {_duration(progress.elapsed)}."
        )

    def _account(self, value: str) -> OfficialAccount:
        found = OfficialAccount.objects.filter(appid=value).first()
        if found is None and value.isdigit():
            found = OfficialAccount.objects.filter(pk=int(value)).first()
        if found is None:
            raise CommandError(f"No official account has the AppID or id {value!r}.")
        return found
