"""`manage.py backfill_history --account <appid or id> --days N`: the first import.

Imports up to 30 days of chat history (what WeChat keeps) window by window. It is
resumable: interrupt it (Ctrl-C, a crash) and run it again to continue after the last
complete window. A transient WeChat failure (errcode -1, HTTP 5xx, a dropped
connection or a timeout) does not stop it: it waits (exponential backoff with jitter,
the lease kept renewed meanwhile) and resumes from its cursor, up to `--retries`
failures in a row. Progress is drawn on stderr and saved on the account's backfill
SyncState row, where the dashboard shows it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Protocol

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import OfficialAccount, SyncState
from accounts.sync import (
    SyncLeaseLost,
    sync_lease,
    sync_state_claim,
    sync_state_release,
    sync_state_renew,
)
from kfadmin.wechat import WeChatError, WeChatRetryableError
from messaging.sync import SyncProgress, history_backfill

# The longest wait between two attempts, whatever --backoff says.
BACKOFF_MAX_SECONDS = 120.0


def backoff_delay(failures: int, base: float, *, cap: float = BACKOFF_MAX_SECONDS) -> float:
    """Seconds to wait after the `failures`-th failure in a row: base · 2^(n-1), at
    most `cap`, with jitter (a random half to all of it) so that several backfills
    hitting the same outage do not come back in step."""
    ceiling = min(cap, base * 2 ** max(0, failures - 1))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security


def wait_renewing(seconds: float, renew: Callable[[], None], *, every: float) -> None:
    """Sleep `seconds`, renewing the claim at least every `every` seconds: a backfill
    waiting out an outage is alive and must not be taken over."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, every))
        renew()


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

    def note(self, text: str) -> None:
        """A line of its own (a retry notice); the bar is redrawn below it."""
        if self.interactive and self._width:
            self._write("\n")
            self._width = 0
        self._write(text + "\n")
        self.stream.flush()
        self._last_window = -1  # redraw on the next update

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
        parser.add_argument(
            "--retries", type=int, default=10,
            help="Transient WeChat failures in a row to wait out before giving up (default 10).",
        )
        parser.add_argument(
            "--backoff", type=float, default=2.0,
            help="Seconds to wait after the first failure; doubled after each further one "
            f"(with jitter, at most {BACKOFF_MAX_SECONDS:.0f} s). Default 2.",
        )

    def handle(
        self, *args, account: str, days: float, restart: bool, retries: int, backoff: float, **options
    ) -> None:
        if not 0 < days <= 60:
            raise CommandError("--days must be more than 0 and at most 60.")
        if retries < 0 or backoff < 0:
            raise CommandError("--retries and --backoff cannot be negative.")
        found = self._account(account)
        job = SyncState.Job.BACKFILL
        token = sync_state_claim(account_id=found.pk, job=job)
        if token is None:
            raise CommandError(
                f"A backfill of {found} is already running. Wait for it to finish (a backfill "
                f"that died stops holding the account {int(sync_lease().total_seconds())} s "
                "after its last sign of life)."
            )
        bar = ProgressBar(self.stderr)

        def renew() -> None:
            sync_state_renew(account_id=found.pk, job=job, token=token)

        try:
            progress = self._backfill(
                found, days=days, restart=restart, token=token, bar=bar,
                retries=retries, backoff=backoff, renew=renew,
            )
        except SyncLeaseLost:
            raise CommandError(
                "Another backfill of this account took over (this one showed no sign of life "
                "for longer than its lease). It continues from the same cursor."
            ) from None
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

    def _backfill(
        self,
        found: OfficialAccount,
        *,
        days: float,
        restart: bool,
        token: str,
        bar: ProgressBar,
        retries: int,
        backoff: float,
        renew: Callable[[], None],
    ) -> SyncProgress:
        """Run the backfill, resuming from its cursor after each transient failure.

        Only failures in a row count against `retries`: an attempt that stored a page
        before failing resets the count, so a long import through a flaky hour ends.
        """
        failures = 0
        pages = {"n": 0}

        def on_progress(progress: SyncProgress) -> None:
            pages["n"] = progress.pages
            bar.update(progress)

        while True:
            pages["n"] = 0
            try:
                return history_backfill(
                    account_id=found.pk, days=days, restart=restart, lease_token=token, on_progress=on_progress
                )
            except WeChatRetryableError as exc:
                failures = 1 if pages["n"] else failures + 1
                if failures > retries:
                    raise
                restart = False  # the next attempt resumes what this one stored
                delay = backoff_delay(failures, backoff)
                bar.note(
                    f"{exc.explanation} Waiting {delay:.1f} s, then resuming from the last complete "
                    f"window (failure {failures} of at most {retries} in a row)."
                )
                wait_renewing(delay, renew, every=max(0.05, sync_lease().total_seconds() / 4))

    def _account(self, value: str) -> OfficialAccount:
        found = OfficialAccount.objects.filter(appid=value).first()
        if found is None and value.isdigit():
            found = OfficialAccount.objects.filter(pk=int(value)).first()
        if found is None:
            raise CommandError(f"No official account has the AppID or id {value!r}.")
        return found
