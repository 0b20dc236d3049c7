"""The rollups follow every path that stores records, idempotently, and equal a rebuild."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from messaging import sync
from messaging.archive import archive_changed
from messaging.models import MessageRecord, record_digest
from messaging.sync import records_sync_window
from reports.models import (
    MessageHour,
    PendingCustomer,
    PendingHour,
    QueueFact,
    ResponseFact,
    SessionFact,
)
from reports.selectors import rollups_pending
from reports.services import rollups_catch_up, rollups_rebuild, rollups_sweep
from tests.factories import OfficialAccountFactory
from tests.messaging import test_callback as push
from tests.messaging.history_helpers import at, now_s
from tests.reports.archives import example, rollups, store

pytestmark = pytest.mark.django_db


def ids(account) -> dict[str, set[int]]:
    rollups_catch_up(account_id=account.pk)
    return {
        model.__name__: set(model.objects.filter(official_account=account).values_list("pk", flat=True))
        for model in (SessionFact, ResponseFact, QueueFact, MessageHour)
    }


def test_the_history_sync_keeps_the_rollups_and_a_resynced_window_changes_nothing(kf_account_row, emulator, monkeypatch):
    monkeypatch.setattr(sync, "PAGE_SIZE", 150)
    end = now_s() - 600
    start = end - 20 * 3600
    emulator.control("generate_records", count=1500, start=start, end=end, seed=11)

    records_sync_window(account_id=kf_account_row.pk, start=at(start), end=at(end))
    followed, before = rollups(kf_account_row), ids(kf_account_row)
    again = records_sync_window(account_id=kf_account_row.pk, start=at(start), end=at(end))
    shifted = records_sync_window(account_id=kf_account_row.pk, start=at(start + 3600), end=at(end))

    assert again.stored == shifted.stored == 0
    assert ids(kf_account_row) == before
    assert len(followed["sessions"]) > 50 and len(followed["responses"]) > 50 and len(followed["queue"]) > 20
    rollups_rebuild(account_id=kf_account_row.pk)
    assert rollups(kf_account_row) == followed


def test_a_window_synced_in_pieces_gives_the_figures_of_one_import(kf_account_row, emulator, monkeypatch):
    monkeypatch.setattr(sync, "PAGE_SIZE", 97)
    end = now_s() - 600
    start = end - 6 * 3600
    emulator.control("generate_records", count=800, start=start, end=end, seed=12)

    # The later half first, then the earlier one: sessions cut in two are mended.
    records_sync_window(account_id=kf_account_row.pk, start=at(start + 3 * 3600), end=at(end))
    records_sync_window(account_id=kf_account_row.pk, start=at(start), end=at(start + 3 * 3600))
    followed = rollups(kf_account_row)

    rollups_rebuild(account_id=kf_account_row.pk)
    assert rollups(kf_account_row) == followed


def test_provisional_records_replaced_by_wechats_copies_leave_no_trace():
    account = OfficialAccountFactory()
    rows = example(account.wechat_id)
    # The callback and kfadmin's own sends knew these a second early.
    store(account, [(t - timedelta(seconds=1), *rest) for t, *rest in rows[:7]], source=MessageRecord.Source.CALLBACK)
    workers = [f"{prefix}@{account.wechat_id}" if prefix else "" for _, _, prefix, _, _ in rows]
    staged = [
        (int(t.timestamp()), worker, openid, code, text, record_digest(worker, openid, code, text), 0)
        for (t, code, _, openid, text), worker in zip(rows, workers, strict=True)
    ]

    stored, merged = sync._store_page(account, staged)

    assert (stored, merged) == (len(rows), 7)
    assert not MessageRecord.objects.exclude(source=MessageRecord.Source.SYNC).exists()
    followed = rollups(account)
    rollups_rebuild(account_id=account.pk)
    assert rollups(account) == followed
    assert len(followed["sessions"]) == 4


def test_a_pushed_message_is_counted_by_the_catch_up_and_a_redelivery_changes_nothing(client, monkeypatch):
    account = OfficialAccountFactory(
        appid="wx1def0e9e5891b338", wechat_id="shop", callback_token=push.TOKEN,
        encoding_aes_key=push.AES_KEY, original_id=push.ORIGINAL_ID,
    )
    monkeypatch.setattr(push.callback, "_now", lambda: push.TS)  # the receiver's clock at the push's time

    assert push.post(client, account, push.text_message("在吗")).status_code == 200
    first = ids(account)
    assert push.post(client, account, push.text_message("在吗")).status_code == 200

    hour = MessageHour.objects.get(official_account=account)
    assert (hour.messages_in, hour.messages_out, hour.worker) == (1, 0, "")
    assert ids(account) == first


def test_the_rebuild_command_derives_the_rollups_again(tmp_path):
    account = OfficialAccountFactory()
    store(account, example(account.wechat_id), tell=False)
    out = StringIO()

    call_command("reports_rebuild", "--account", account.appid, stdout=out)
    whole = rollups(account)
    call_command("reports_rebuild", "--account", account.appid, "--since", "2026-03-02", stdout=out)

    assert len(whole["sessions"]) == 4 and rollups(account) == whole
    assert "4 customers" in out.getvalue()
    with pytest.raises(CommandError, match="No official account"):
        call_command("reports_rebuild", "--account", "wxnothere", stdout=out)
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("reports_rebuild", "--account", account.appid, "--since", "yesterday", stdout=out)


def test_storing_only_notes_the_change_and_the_catch_up_on_the_sync_queue_derives_it(
    monkeypatch, django_capture_on_commit_callbacks
):
    account = OfficialAccountFactory()
    sent = []
    monkeypatch.setattr("reports.services.celery_app.send_task", lambda name, args: sent.append((name, args)))
    with django_capture_on_commit_callbacks(execute=True):
        store(account, example(account.wechat_id), tell=False)
        rows = [(r.openid, r.time) for r in MessageRecord.objects.filter(official_account=account)]
        archive_changed(account_id=account.pk, changes=rows)

    assert not SessionFact.objects.filter(official_account=account).exists()
    pending = rollups_pending(account=account)
    assert pending.any and pending.customers == len({openid for openid, _ in rows})
    assert sent == [("reports.tasks.sync_rollups_task", (account.pk,))]

    assert rollups_catch_up(account_id=account.pk) == pending.customers
    assert not rollups_pending(account=account).any
    assert not PendingCustomer.objects.exists() and not PendingHour.objects.exists()
    followed = rollups(account)
    rollups_rebuild(account_id=account.pk)
    assert rollups(account) == followed


def test_the_catch_up_works_in_batches_and_the_sweep_finds_what_no_task_took():
    small, swept = OfficialAccountFactory(), OfficialAccountFactory()
    for account in (small, swept):
        store(account, example(account.wechat_id), tell=False)
        for record in MessageRecord.objects.filter(official_account=account):
            # Told twice: a customer noted twice is derived again, harmlessly.
            archive_changed(account_id=account.pk, changes=[(record.openid, record.time)] * 2)
    customers = set(MessageRecord.objects.filter(official_account=small).values_list("openid", flat=True))

    assert rollups_catch_up(account_id=small.pk, batch=3) >= len(customers)
    assert rollups_sweep() == {swept.pk: len(customers)}
    for account in (small, swept):
        assert not rollups_pending(account=account).any
        followed = rollups(account)
        rollups_rebuild(account_id=account.pk)
        assert rollups(account) == followed


@pytest.mark.django_db(transaction=True)
def test_a_rebuild_waits_for_a_running_catch_up_of_the_account():
    """Both derive the same customers; the rebuild takes the catch-up's lock, so the
    two never write facts side by side."""
    import threading

    from django.db import connection, connections

    from reports.services import _LOCK_CLASS

    if connection.vendor != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    account = OfficialAccountFactory()
    store(account, example(account.wechat_id), tell=False)
    rollups_rebuild(account_id=account.pk)
    whole = rollups(account)
    holding, release = threading.Event(), threading.Event()

    def catch_up_holding_the_lock():
        from django.db import transaction

        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, account.pk])
                holding.set()
                release.wait(timeout=60)
        finally:
            connection.close()

    def rebuild():
        try:
            rollups_rebuild(account_id=account.pk)
        finally:
            connection.close()

    holder = threading.Thread(target=catch_up_holding_the_lock)
    holder.start()
    assert holding.wait(timeout=60)
    rebuilder = threading.Thread(target=rebuild)
    rebuilder.start()
    try:
        waiting = 0
        with connections["default"].cursor() as cursor:
            while not waiting and rebuilder.is_alive():
                cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                waiting = cursor.fetchone()[0]
        assert waiting == 1 and rebuilder.is_alive()  # the rebuild waits for the lock
    finally:
        release.set()
        holder.join(timeout=60)
        rebuilder.join(timeout=120)
    assert not rebuilder.is_alive()
    assert rollups(account) == whole
