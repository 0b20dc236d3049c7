"""The history sync under a flaky WeChat (faults injected by the emulator) and killed
workers: after retries the archive equals the emulator's records exactly."""

from __future__ import annotations

from collections import Counter

import psycopg
import pytest
from django.db import connection

from accounts.models import SyncState
from accounts.sync import SyncLeaseLost, sync_state_claim
from kfadmin.wechat import WeChatClient, WeChatRetryableError
from messaging import sync
from messaging.models import MessageRecord
from messaging.sync import history_sync
from messaging.tasks import sync_history_task
from tests.messaging.history_helpers import (
    MSGLIST_PATH,
    Killed,
    archive_records,
    at,
    emulator_records,
    kill_after,
    msglist_calls,
    now_s,
    until_done,
)

pytestmark = pytest.mark.django_db

DAYS = 3


@pytest.fixture
def history(kf_account_row, emulator, monkeypatch):
    """Three days of history (≈3 pages per window) and a cursor three days back."""
    monkeypatch.setattr(sync, "PAGE_SIZE", 400)
    now = now_s()
    start = now - DAYS * 86400
    emulator.control("generate_records", count=3000, start=start, end=now - 30, seed=21)
    # Identical messages in one second, so retries must keep seq stable.
    store = emulator.state.record_store(appid=emulator.appid)
    for _ in range(3):
        store.append(time=now - 5000, opercode=2003, worker="kf1@test_oa", openid="o_dup", text="好")
    SyncState.objects.create(official_account=kf_account_row, job=SyncState.Job.HISTORY, cursor=at(start))
    return kf_account_row, now


def _assert_archive_is_exact(account, emulator):
    expected = emulator_records(emulator)
    assert archive_records(account) == expected
    assert MessageRecord.objects.filter(official_account=account).count() == sum(expected.values())
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM (SELECT 1 FROM messaging_messagerecord WHERE official_account_id = %s "
            "GROUP BY time, digest, seq HAVING count(*) > 1) d",
            [account.pk],
        )
        assert cursor.fetchone()[0] == 0


FAULTS = [
    pytest.param({"kind": "errcode", "errcode": -1, "rate": 0.3}, id="errcode -1 on 30% of calls"),
    pytest.param({"kind": "http", "status": 502, "next": 3}, id="three 502s"),
    pytest.param({"kind": "http", "status": 500, "rate": 0.5}, id="500 on half the calls"),
    pytest.param({"kind": "drop", "next": 2}, id="two dropped connections"),
    pytest.param({"kind": "drop", "rate": 0.4}, id="dropped connections on 40% of calls"),
]


@pytest.mark.parametrize("fault", FAULTS)
def test_after_retries_the_archive_equals_the_emulator_records(history, emulator, fault):
    account, now = history
    emulator.control("add_fault", path_prefix=MSGLIST_PATH, **fault)

    progress, failures = until_done(lambda: history_sync(account_id=account.pk, until=at(now)))

    assert failures >= 1
    assert progress.state == "done"
    _assert_archive_is_exact(account, emulator)


def test_slow_answers_time_out_and_are_retried(history, emulator):
    account, now = history
    client = WeChatClient(
        account.appid, account.secret, base_url=account.api_base_url, timeout=1.0
    )
    emulator.control("add_fault", kind="slow", delay=5.0, next=2, path_prefix=MSGLIST_PATH)

    _, failures = until_done(lambda: history_sync(account_id=account.pk, until=at(now), client=client))

    assert failures >= 2  # the two slow answers timed out (a busy machine may add more)
    _assert_archive_is_exact(account, emulator)


def test_a_token_invalidated_mid_run_is_refreshed_without_losing_records(history, emulator):
    account, now = history

    pages = Counter()

    def invalidate_after_second_page(page) -> None:
        pages["n"] += 1
        if pages["n"] == 2:
            emulator.control("add_fault", kind="invalidate_token", next=1, path_prefix=MSGLIST_PATH)

    history_sync(account_id=account.pk, until=at(now), on_page=invalidate_after_second_page)

    tokens = {c.query.get("access_token") for c in msglist_calls(emulator)}
    assert len(tokens) == 2  # the revoked one and its replacement
    _assert_archive_is_exact(account, emulator)


@pytest.mark.parametrize("pages", [1, 2, 4, 7])
def test_a_sync_killed_between_pages_then_rerun_gives_the_same_archive(history, emulator, pages):
    account, now = history
    with pytest.raises(Killed):
        history_sync(account_id=account.pk, until=at(now), on_page=kill_after(pages))
    stored_before = MessageRecord.objects.count()
    assert 0 < stored_before < sum(emulator_records(emulator).values())

    history_sync(account_id=account.pk, until=at(now))

    _assert_archive_is_exact(account, emulator)


def test_a_sync_killed_inside_a_page_stores_none_of_that_page(history, emulator, monkeypatch):
    account, now = history
    calls = Counter()
    original = sync._touch_customers

    def dies_on_third_page(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Killed("died after the INSERT, before the commit")
        return original(*args, **kwargs)

    monkeypatch.setattr(sync, "_touch_customers", dies_on_third_page)
    with pytest.raises(Killed):
        history_sync(account_id=account.pk, until=at(now))
    assert MessageRecord.objects.count() == 2 * 400  # two committed pages, the third rolled back

    history_sync(account_id=account.pk, until=at(now))
    _assert_archive_is_exact(account, emulator)


def test_a_direct_copy_that_collides_with_a_concurrent_sync_falls_back_to_the_staging_path(
    history, emulator, monkeypatch
):
    account, now = history
    copy_into_archive = sync._copy_into_archive
    collisions = Counter()

    def collides(cursor, account_id, rows):
        copy_into_archive(cursor, account_id, rows)  # rolled back with the savepoint
        collisions["n"] += 1
        raise psycopg.errors.UniqueViolation("duplicate key value violates unique constraint")

    monkeypatch.setattr(sync, "_copy_into_archive", collides)
    history_sync(account_id=account.pk, until=at(now))

    assert collisions["n"] >= 2
    _assert_archive_is_exact(account, emulator)


def test_the_task_retries_transient_errors_and_then_completes(history, emulator):
    account, _now = history
    emulator.control("add_fault", kind="errcode", errcode=-1, next=2, path_prefix=MSGLIST_PATH)

    result = sync_history_task.apply(args=[account.pk])

    assert result.successful(), result.traceback
    assert result.get()["state"] == "done"
    state = SyncState.objects.get(official_account=account, job=SyncState.Job.HISTORY)
    assert state.running_token == "" and state.running_since is None
    # The task syncs up to "now", which may include records the fixture wrote at now-30.
    _assert_archive_is_exact(account, emulator)


def test_the_task_gives_up_on_errors_that_retrying_cannot_fix(history, emulator):
    account, _now = history
    emulator.control("add_fault", kind="errcode", errcode=45009, next=1, path_prefix=MSGLIST_PATH)

    result = sync_history_task.apply(args=[account.pk])

    assert result.failed()
    assert len(msglist_calls(emulator)) == 1
    state = SyncState.objects.get(official_account=account, job=SyncState.Job.HISTORY)
    assert state.running_token == ""
    assert "quota" in state.last_error and state.progress["state"] == "failed"


def test_the_retry_policy_covers_only_the_clients_transient_errors():
    assert sync_history_task.autoretry_for == (WeChatRetryableError,)
    assert sync_history_task.max_retries >= 3
    assert sync_history_task.queue == "sync"


def test_a_second_run_for_the_same_account_is_skipped_while_one_holds_the_claim(history, emulator):
    account, _now = history
    token = sync_state_claim(account_id=account.pk, job=SyncState.Job.HISTORY)
    assert token

    result = sync_history_task.apply(args=[account.pk])

    assert result.get() is None
    assert msglist_calls(emulator) == []
    assert SyncState.objects.get(official_account=account, job="history").running_token == token


def test_a_run_whose_claim_was_taken_over_stops_without_moving_the_cursor(history, emulator):
    account, now = history
    token = sync_state_claim(account_id=account.pk, job=SyncState.Job.HISTORY)
    state = SyncState.objects.get(official_account=account, job="history")
    before = state.cursor

    def steal(page) -> None:
        SyncState.objects.filter(pk=state.pk).update(running_token="another-run")

    with pytest.raises(SyncLeaseLost):
        history_sync(account_id=account.pk, until=at(now), on_page=steal, lease_token=token)

    state.refresh_from_db()
    assert state.cursor == before and state.running_token == "another-run"


def test_a_claim_is_renewed_while_the_run_makes_progress(history, emulator):
    account, now = history
    token = sync_state_claim(account_id=account.pk, job=SyncState.Job.HISTORY)
    seen = []

    def watch(page) -> None:
        state = SyncState.objects.get(official_account=account, job="history")
        seen.append((state.running_since, state.heartbeat_at, state.lease_until))

    history_sync(account_id=account.pk, until=at(now), on_page=watch, lease_token=token)

    started, heartbeats, leases = zip(*seen, strict=True)
    assert len(seen) > 3 and len(set(started)) == 1  # "running since" stays the run's start
    assert list(heartbeats) == sorted(heartbeats) and heartbeats[0] < heartbeats[-1]
    assert list(leases) == sorted(leases) and leases[0] < leases[-1]


def test_sync_all_history_queues_one_task_per_active_account(history, monkeypatch):
    from messaging import tasks
    from tests.factories import OfficialAccountFactory

    OfficialAccountFactory(is_active=False)
    queued = []
    monkeypatch.setattr(
        tasks.sync_history_task, "apply_async", lambda args, **kw: queued.append((args, kw))
    )

    assert tasks.sync_all_history_task() == 1
    account, _ = history
    assert queued[0][0] == [account.pk] and queued[0][1]["expires"] > 0
