"""`manage.py backfill_history`: the first import, resumable, with progress."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import SyncState
from accounts.sync import sync_state_claim, sync_state_renew
from messaging import sync
from messaging.management.commands.backfill_history import (
    BACKOFF_MAX_SECONDS,
    ProgressBar,
    backoff_delay,
    wait_renewing,
)
from messaging.models import MessageRecord
from messaging.sync import OVERLAP, SyncProgress
from tests.messaging.history_helpers import (
    MSGLIST_PATH,
    archive_records,
    at,
    emulator_records,
    msglist_calls,
    now_s,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def four_days(kf_account_row, emulator, monkeypatch):
    monkeypatch.setattr(sync, "PAGE_SIZE", 500)
    now = now_s()
    emulator.control("generate_records", count=4000, start=now - 4 * 86400 + 120, end=now - 60, seed=31)
    return kf_account_row


def _run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("backfill_history", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _state(account, job: str) -> SyncState:
    return SyncState.objects.get(official_account=account, job=job)


def test_the_backfill_imports_the_requested_days_with_progress(four_days, emulator):
    account = four_days

    out, err = _run("--account", account.appid, "--days", "4")

    assert archive_records(account) == emulator_records(emulator)
    backfill = _state(account, "backfill")
    windows = backfill.progress["windows_total"]
    assert windows == 5  # 4 days in 24-hour windows that overlap by 10 minutes
    assert f"windows {windows}/{windows}" in err and "records 4," in err and "ETA" in err and "/s" in err
    assert "done" in out
    assert backfill.progress["state"] == "done" and backfill.progress["windows_done"] == windows
    assert backfill.progress["records_stored"] == 4000
    assert backfill.running_token == ""
    # The periodic sync continues where the backfill ended.
    assert _state(account, "history").cursor == backfill.cursor


def test_the_backfill_resumes_after_an_interruption(four_days, emulator, monkeypatch):
    account = four_days
    # WeChat busy on the very first call, no retries allowed: nothing stored, the
    # cursor stays at the import's start.
    emulator.control("add_fault", kind="errcode", errcode=-1, next=1, path_prefix=MSGLIST_PATH)
    with pytest.raises(CommandError, match="Run the command again"):
        _run("--account", account.appid, "--days", "4", "--retries", "0")
    backfill = _state(account, "backfill")
    assert backfill.cursor.isoformat() == backfill.progress["from"]

    # Then a quota error (not retryable) after the 5th page, in the second window.
    pages = {"n": 0}
    store_page = sync._store_page

    def quota_after_five_pages(*args, **kwargs):
        pages["n"] += 1
        if pages["n"] == 5:
            emulator.control("add_fault", kind="errcode", errcode=45009, next=1, path_prefix=MSGLIST_PATH)
        return store_page(*args, **kwargs)

    monkeypatch.setattr(sync, "_store_page", quota_after_five_pages)
    with pytest.raises(CommandError, match="quota"):
        _run("--account", account.appid, "--days", "4")
    monkeypatch.setattr(sync, "_store_page", store_page)
    backfill = _state(account, "backfill")
    assert backfill.cursor is not None and backfill.progress["state"] == "failed"
    assert backfill.running_token == ""
    stopped_at = backfill.cursor
    first_run_from = backfill.progress["from"]
    emulator.state.clear_calls()

    _run("--account", str(account.pk), "--days", "4")

    first_start = msglist_calls(emulator)[0].json["starttime"]
    assert first_start == int((stopped_at - OVERLAP).timestamp())
    assert archive_records(account) == emulator_records(emulator)
    backfill = _state(account, "backfill")
    assert backfill.progress["state"] == "done" and backfill.progress["from"] == first_run_from


def test_a_finished_backfill_run_again_imports_afresh_and_adds_nothing(four_days, emulator):
    account = four_days
    _run("--account", account.appid, "--days", "4")
    emulator.state.clear_calls()

    _run("--account", account.appid, "--days", "2")

    assert abs(msglist_calls(emulator)[0].json["starttime"] - (now_s() - 2 * 86400)) <= 60  # "now" is read a moment earlier inside the command
    assert _state(account, "backfill").progress["records_stored"] == 0


def test_restart_ignores_an_unfinished_backfill(four_days, emulator):
    account = four_days
    SyncState.objects.create(
        official_account=account, job="backfill", cursor=at(now_s() - 3600), progress={"state": "failed"}
    )

    _run("--account", account.appid, "--days", "4", "--restart")

    assert archive_records(account) == emulator_records(emulator)


def test_the_backfill_refuses_to_run_twice_at_once(four_days):
    account = four_days
    assert sync_state_claim(account_id=account.pk, job="backfill")
    with pytest.raises(CommandError, match="already running"):
        _run("--account", account.appid, "--days", "1")


def test_an_unknown_account_or_bad_days_are_refused(db):
    with pytest.raises(CommandError, match="No official account"):
        _run("--account", "wx_nobody", "--days", "1")
    with pytest.raises(CommandError, match="days"):
        _run("--account", "1", "--days", "0")


class _Terminal(StringIO):
    def write(self, msg="", style_func=None, ending=None):  # the OutputWrapper signature
        return super().write(msg + (ending or ""))

    def isatty(self) -> bool:
        return True


def test_the_progress_bar_redraws_one_line_on_a_terminal():
    stream = _Terminal()
    bar = ProgressBar(stream, min_interval=0)
    progress = SyncProgress(job="backfill", range_from=at(0), range_until=at(86400 * 4), windows_total=4)
    for done in range(1, 5):
        progress.windows_done = done
        progress.cursor = at(86400 * done)
        progress.records_seen = 1000 * done
        bar.update(progress)
    progress.state = "done"
    bar.finish(progress)
    text = stream.getvalue()
    assert text.count("\r") == 5 and text.endswith("\n") and text.count("\n") == 1
    assert "100.0%" in text and "windows 4/4" in text and "records 4,000" in text


# --------------------------------------------------------------------------- retries

FAULTS = [
    pytest.param({"kind": "errcode", "errcode": -1, "rate": 0.3}, id="errcode -1 on 30% of calls"),
    pytest.param({"kind": "http", "status": 502, "next": 3}, id="three 502s"),
    pytest.param({"kind": "http", "status": 500, "rate": 0.5}, id="500 on half the calls"),
    pytest.param({"kind": "drop", "next": 2}, id="two dropped connections"),
    pytest.param({"kind": "drop", "rate": 0.4}, id="dropped connections on 40% of calls"),
]


@pytest.mark.parametrize("fault", FAULTS)
def test_one_invocation_rides_out_transient_faults_and_imports_everything(four_days, emulator, fault):
    account = four_days
    emulator.control("add_fault", path_prefix=MSGLIST_PATH, **fault)

    out, err = _run("--account", account.appid, "--days", "4", "--backoff", "0.01")

    assert "Waiting" in err and "resuming from the last complete window" in err
    assert "done" in out
    assert archive_records(account) == emulator_records(emulator)
    assert MessageRecord.objects.filter(official_account=account).count() == 4000
    backfill = _state(account, "backfill")
    assert backfill.progress["state"] == "done" and backfill.running_token == ""


def test_the_wait_says_what_it_waits_for(four_days, emulator):
    account = four_days
    emulator.control("add_fault", kind="errcode", errcode=-1, next=2, path_prefix=MSGLIST_PATH)

    _out, err = _run("--account", account.appid, "--days", "4", "--backoff", "0.01")

    notes = [line for line in err.splitlines() if "Waiting" in line]
    assert len(notes) == 2
    assert notes[0].startswith("WeChat is busy right now.")
    assert "failure 1 of at most 10 in a row" in notes[0] and "failure 2 of at most 10 in a row" in notes[1]


def test_it_gives_up_after_the_allowed_failures_in_a_row(four_days, emulator):
    account = four_days
    emulator.control("add_fault", kind="errcode", errcode=-1, path_prefix=MSGLIST_PATH)

    with pytest.raises(CommandError, match="Run the command again to resume"):
        _run("--account", account.appid, "--days", "4", "--retries", "2", "--backoff", "0.01")

    assert len(msglist_calls(emulator)) == 3  # the first attempt and two retries
    assert _state(account, "backfill").running_token == ""


def test_errors_that_retrying_cannot_fix_stop_it_at_once(four_days, emulator):
    account = four_days
    emulator.control("add_fault", kind="errcode", errcode=45009, next=1, path_prefix=MSGLIST_PATH)

    with pytest.raises(CommandError, match="quota"):
        _run("--account", account.appid, "--days", "4", "--backoff", "0.01")

    assert len(msglist_calls(emulator)) == 1


def test_a_new_import_that_fails_in_its_first_window_resumes_at_its_own_start(four_days, emulator):
    account = four_days
    # An import of the last day finished earlier: its cursor is "now".
    _run("--account", account.appid, "--days", "1")
    MessageRecord.objects.all().delete()
    emulator.control("add_fault", kind="errcode", errcode=-1, next=1, path_prefix=MSGLIST_PATH)

    _run("--account", account.appid, "--days", "4", "--backoff", "0.01")

    assert archive_records(account) == emulator_records(emulator)


def test_backoff_doubles_up_to_its_cap_with_jitter():
    for failures, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (10, BACKOFF_MAX_SECONDS)]:
        delays = [backoff_delay(failures, 2.0) for _ in range(50)]
        assert all(ceiling / 2 <= delay <= ceiling for delay in delays)
        assert len(set(delays)) > 1


def test_the_wait_keeps_renewing_the_claim(four_days):
    account = four_days
    token = sync_state_claim(account_id=account.pk, job="backfill")
    leases = []

    def renew() -> None:
        sync_state_renew(account_id=account.pk, job="backfill", token=token)
        leases.append(_state(account, "backfill").lease_until)

    wait_renewing(0.2, renew, every=0.05)

    assert len(leases) >= 1 and leases == sorted(leases)
