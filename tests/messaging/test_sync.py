"""History sync against the emulator over HTTP, into PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from accounts.models import SyncState
from messaging import sync
from messaging.models import MessageRecord, record_digest
from messaging.selectors import records_iter_export, records_search
from messaging.sync import (
    OVERLAP,
    WINDOW,
    history_sync,
    records_sync_window,
    window_bounds,
)
from sessions_app.models import Customer
from sessions_app.services import customer_touch, customer_window_consume
from tests.messaging.history_helpers import (
    Killed,
    archive_records,
    at,
    emulator_records,
    kill_after,
    msglist_calls,
    now_s,
)

pytestmark = pytest.mark.django_db


def _append(emulator, *, time: int, text: str, opercode: int = 2003, worker: str = "kf1@test_oa", openid: str = "o_same_customer"):
    emulator.state.record_store(appid=emulator.appid).append(
        time=time, opercode=opercode, worker=worker, openid=openid, text=text
    )


def _history_state(account) -> SyncState:
    return SyncState.objects.get(official_account=account, job=SyncState.Job.HISTORY)


# ------------------------------------------------------------------ one window


@pytest.mark.parametrize("count,pages", [(1234, 13), (1200, 13), (99, 1), (0, 1)])
def test_a_window_is_paged_to_the_end(kf_account_row, emulator, monkeypatch, count, pages):
    monkeypatch.setattr(sync, "PAGE_SIZE", 100)
    end = now_s() - 3600
    start = end - 20 * 3600
    if count:
        emulator.control("generate_records", count=count, start=start, end=end, seed=3)

    result = records_sync_window(account_id=kf_account_row.pk, start=at(start), end=at(end))

    assert (result.pages, result.records, result.stored) == (pages, count, count)
    calls = msglist_calls(emulator)
    assert [c.json["msgid"] for c in calls] == [1 + 100 * i for i in range(pages)]
    assert {(c.json["starttime"], c.json["endtime"], c.json["number"]) for c in calls} == {(start, end, 100)}
    assert archive_records(kf_account_row) == emulator_records(emulator)


def test_re_syncing_a_window_adds_nothing(kf_account_row, emulator, monkeypatch):
    monkeypatch.setattr(sync, "PAGE_SIZE", 250)
    end = now_s() - 600
    start = end - 12 * 3600
    emulator.control("generate_records", count=900, start=start, end=end, seed=5)
    first = records_sync_window(account_id=kf_account_row.pk, start=at(start), end=at(end))
    ids = set(MessageRecord.objects.values_list("pk", flat=True))

    again = records_sync_window(account_id=kf_account_row.pk, start=at(start), end=at(end))
    # An overlapping window with a different start sees the same seconds the same way.
    shifted = records_sync_window(account_id=kf_account_row.pk, start=at(start + 3600), end=at(end))

    assert first.stored == 900
    assert again.records == 900 and again.stored == 0
    assert shifted.stored == 0
    assert set(MessageRecord.objects.values_list("pk", flat=True)) == ids


def test_two_identical_messages_in_one_second_are_both_kept(kf_account_row, emulator, monkeypatch):
    # Page size 2 puts the two identical messages on different pages.
    monkeypatch.setattr(sync, "PAGE_SIZE", 2)
    t = now_s() - 7200
    _append(emulator, time=t, text="好的")
    _append(emulator, time=t, text="好的")
    _append(emulator, time=t, text="好的", openid="o_other")
    _append(emulator, time=t + 1, text="好的")

    for _ in range(2):
        records_sync_window(account_id=kf_account_row.pk, start=at(t - 60), end=at(t + 60))

    rows = list(
        MessageRecord.objects.order_by("time", "openid", "seq").values_list("time", "openid", "seq")
    )
    assert [(int(tm.timestamp()) - t, o, s) for tm, o, s in rows] == [
        (0, "o_other", 0),
        (0, "o_same_customer", 0),
        (0, "o_same_customer", 1),
        (1, "o_same_customer", 0),
    ]


def test_a_window_longer_than_24_hours_is_refused(kf_account_row):
    with pytest.raises(ValueError, match="24 hours"):
        records_sync_window(account_id=kf_account_row.pk, start=at(0), end=at(86401))


def test_windows_cover_the_range_in_24_hour_steps_that_overlap():
    start, until = at(1_700_000_000), at(1_700_000_000 + 3 * 86400 + 5)
    windows = window_bounds(start, until, overlap=False)
    assert windows[0][0] == start and windows[-1][1] == until
    assert all(end - begin <= WINDOW for begin, end in windows)
    assert all(nxt[0] == prev[1] - OVERLAP for prev, nxt in zip(windows, windows[1:], strict=False))
    assert window_bounds(start, until, overlap=True)[0][0] == start - OVERLAP
    assert window_bounds(until, until, overlap=True) == []


# ------------------------------------------------------------------ walking windows


def test_the_first_sync_starts_from_the_look_back_and_later_ones_from_the_cursor(kf_account_row, emulator, settings):
    settings.HISTORY_LOOKBACK_DAYS = 2
    now = now_s()
    emulator.control("generate_records", count=3000, start=now - 5 * 86400, end=now - 60, seed=9)

    progress = history_sync(account_id=kf_account_row.pk, until=at(now))

    starts = [c.json["starttime"] for c in msglist_calls(emulator)]
    assert abs(starts[0] - (now - 2 * 86400)) <= 60  # "now" is read a moment later inside the sync
    assert progress.windows_done == 3 and progress.state == "done"
    state = _history_state(kf_account_row)
    assert state.cursor == at(now)
    in_look_back = {k: v for k, v in emulator_records(emulator).items() if k[0] >= starts[0]}
    assert archive_records(kf_account_row) == in_look_back

    emulator.state.clear_calls()
    history_sync(account_id=kf_account_row.pk, until=at(now + 300))
    assert [c.json["starttime"] for c in msglist_calls(emulator)] == [now - int(OVERLAP.total_seconds())]


def test_the_cursor_advances_only_after_a_complete_window(kf_account_row, emulator, monkeypatch):
    monkeypatch.setattr(sync, "PAGE_SIZE", 200)
    now = now_s()
    start = now - 3 * 86400
    emulator.control("generate_records", count=2400, start=start, end=now - 10, seed=11)
    SyncState.objects.create(official_account=kf_account_row, job=SyncState.Job.HISTORY, cursor=at(start))
    cursors = []
    original_save = sync._save

    def spy(state, progress, lease_token, **kwargs):
        if kwargs.get("cursor") is not None:
            cursors.append((kwargs["cursor"], progress.pages))
        return original_save(state, progress, lease_token, **kwargs)

    monkeypatch.setattr(sync, "_save", spy)
    # About 4 pages per window: die in the middle of the second window.
    with pytest.raises(Killed):
        history_sync(account_id=kf_account_row.pk, until=at(now), on_page=kill_after(6))

    first_window_end = window_bounds(at(start), at(now), overlap=True)[0][1]
    assert _history_state(kf_account_row).cursor == first_window_end
    assert [c for c, _ in cursors] == [first_window_end]
    assert _history_state(kf_account_row).progress["state"] == "failed"

    history_sync(account_id=kf_account_row.pk, until=at(now))
    assert _history_state(kf_account_row).cursor == at(now)
    assert archive_records(kf_account_row) == emulator_records(emulator)


def test_progress_is_saved_for_the_dashboard(kf_account_row, emulator):
    now = now_s()
    emulator.control("generate_records", count=500, start=now - 86400, end=now - 5, seed=2)
    history_sync(account_id=kf_account_row.pk, until=at(now))
    state = _history_state(kf_account_row)
    progress = state.progress
    assert progress["state"] == "done"
    assert progress["records_stored"] == 500 and progress["records_seen"] == 500
    assert progress["windows_done"] == progress["windows_total"] >= 1
    assert progress["rate"] > 0 and progress["percent"] == 100.0
    assert state.last_success_at is not None and state.last_error == ""


# ------------------------------------------------------------------ content


ODD_TEXTS = [
    "",
    "😀🎉👍🏽 emoji 👨‍👩‍👧",
    "长" * 10000,
    "<script>alert('x')</script>",
    "\x01\x02\x7f\u0080\u00ff\ufffd\u200b binary-ish \x1b[31m",
    "tab\tnew\nline\r\nend \\ backslash 'quote' \"dq\" %_",
    "   leading and trailing   ",
]


def test_odd_content_is_stored_and_returned_unchanged(kf_account_row, emulator):
    t = now_s() - 3600
    for i, text in enumerate(ODD_TEXTS):
        _append(emulator, time=t + i, text=text)

    records_sync_window(account_id=kf_account_row.pk, start=at(t - 10), end=at(t + 60))

    stored = list(MessageRecord.objects.order_by("time").values_list("text", flat=True))
    assert stored == ODD_TEXTS
    for text in ODD_TEXTS[1:]:
        needle = text.strip()[:20]
        found = records_search(account=kf_account_row, q=needle, limit=100).records
        assert text in [r.text for r in found], needle


def test_synced_records_carry_their_natural_key(kf_account_row, emulator):
    t = now_s() - 3600
    _append(emulator, time=t, text="你好", opercode=2002, worker="kf7@test_oa", openid="o_x")
    records_sync_window(account_id=kf_account_row.pk, start=at(t), end=at(t))
    record = MessageRecord.objects.get()
    assert record.time == at(t) and record.seq == 0 and record.source == "sync"
    assert bytes(record.digest) == record_digest("kf7@test_oa", "o_x", 2002, "你好")


# ------------------------------------------------------------------ reconciliation


def _provisional(account, *, time: int, text: str, opercode: int = 2001, worker: str = "", openid: str = "o_same_customer", source: str = "callback", micro: int = 0):
    return MessageRecord.objects.create(
        official_account=account,
        time=at(time) + timedelta(microseconds=micro),
        worker=worker,
        openid=openid,
        opercode=opercode,
        text=text,
        digest=record_digest(worker, openid, opercode, text),
        seq=0,
        source=source,
    )


def test_a_callback_copy_a_second_off_is_replaced_by_the_synced_record(kf_account_row, emulator):
    t = now_s() - 3600
    _provisional(kf_account_row, time=t - 1, text="我要退款")  # callback: 2001, no agent
    _append(emulator, time=t, text="我要退款", opercode=2003, worker="kf1@test_oa")

    for _ in range(2):
        records_sync_window(account_id=kf_account_row.pk, start=at(t - 300), end=at(t + 300))

    assert list(MessageRecord.objects.values_list("text", "opercode", "source")) == [("我要退款", 2003, "sync")]


def test_a_callback_copy_with_the_exact_key_is_kept_and_marked_synced(kf_account_row, emulator):
    t = now_s() - 3600
    row = _provisional(kf_account_row, time=t, text="在吗", opercode=2001)
    _append(emulator, time=t, text="在吗", opercode=2001, worker="")

    records_sync_window(account_id=kf_account_row.pk, start=at(t - 300), end=at(t + 300))

    assert list(MessageRecord.objects.values_list("pk", "source")) == [(row.pk, "sync")]


def test_our_own_send_is_replaced_by_the_synced_record(kf_account_row, emulator):
    t = now_s() - 3600
    _provisional(
        kf_account_row, time=t, micro=250000, text="您好，请问有什么可以帮您？",
        opercode=2002, worker="kf1@test_oa", source="kfadmin",
    )
    _append(emulator, time=t + 2, text="您好，请问有什么可以帮您？", opercode=2002)

    records_sync_window(account_id=kf_account_row.pk, start=at(t - 300), end=at(t + 300))

    assert list(MessageRecord.objects.values_list("source", flat=True)) == ["sync"]
    assert MessageRecord.objects.get().time == at(t + 2)


def test_a_synced_record_cancels_one_provisional_copy_only(kf_account_row, emulator):
    t = now_s() - 3600
    _provisional(kf_account_row, time=t, text="ok")
    _provisional(kf_account_row, time=t + 50, text="ok")
    _append(emulator, time=t + 1, text="ok")  # WeChat lists only the first so far

    for _ in range(2):
        records_sync_window(account_id=kf_account_row.pk, start=at(t - 300), end=at(t + 300))

    rows = list(MessageRecord.objects.order_by("time").values_list("time", "source"))
    assert rows == [(at(t + 1), "sync"), (at(t + 50), "callback")]


def test_records_that_differ_or_are_far_apart_are_not_merged(kf_account_row, emulator):
    t = now_s() - 3600
    _provisional(kf_account_row, time=t, text="退款")
    _provisional(kf_account_row, time=t - 600, text="我想问")
    _provisional(kf_account_row, time=t, text="我想问", openid="o_someone_else")
    _provisional(kf_account_row, time=t, text="", opercode=1001, worker="kf2@test_oa")
    _append(emulator, time=t, text="退货")
    _append(emulator, time=t, text="我想问")
    _append(emulator, time=t + 3, text="", opercode=1001, worker="kf1@test_oa")

    records_sync_window(account_id=kf_account_row.pk, start=at(t - 900), end=at(t + 300))

    assert MessageRecord.objects.filter(source="callback").count() == 4
    assert MessageRecord.objects.filter(source="sync").count() == 3


def test_a_session_event_from_a_callback_is_merged_whatever_its_text(kf_account_row, emulator):
    t = now_s() - 3600
    _provisional(kf_account_row, time=t, text="kf1@test_oa → kf2@test_oa", opercode=1003, worker="kf2@test_oa")
    _append(emulator, time=t + 1, text="", opercode=1003, worker="kf2@test_oa")

    records_sync_window(account_id=kf_account_row.pk, start=at(t - 300), end=at(t + 300))

    assert list(MessageRecord.objects.values_list("opercode", "source")) == [(1003, "sync")]


@pytest.mark.parametrize("wechat_opercode", [1001, 1002, 1005])
def test_a_session_start_from_a_callback_is_merged_with_wechats_record_of_any_kind(
    kf_account_row, emulator, wechat_opercode
):
    # kf_create_session is archived as 1001; WeChat records an API-created session as
    # 1002 and a grabbed one as 1005.
    t = now_s() - 3600
    _provisional(kf_account_row, time=t, text="", opercode=1001, worker="kf1@test_oa")
    _append(emulator, time=t, text="", opercode=wechat_opercode, worker="kf1@test_oa")

    for _ in range(2):
        records_sync_window(account_id=kf_account_row.pk, start=at(t - 300), end=at(t + 300))

    assert list(MessageRecord.objects.values_list("opercode", "source")) == [(wechat_opercode, "sync")]


def test_a_session_start_is_not_merged_with_another_kind_of_session_event(kf_account_row, emulator):
    t = now_s() - 3600
    _provisional(kf_account_row, time=t, text="", opercode=1001, worker="kf1@test_oa")
    _append(emulator, time=t + 1, text="", opercode=1004, worker="kf1@test_oa")
    _append(emulator, time=t + 2, text="", opercode=1003, worker="kf1@test_oa")

    records_sync_window(account_id=kf_account_row.pk, start=at(t - 300), end=at(t + 300))

    assert sorted(MessageRecord.objects.values_list("opercode", "source")) == [
        (1001, "callback"), (1003, "sync"), (1004, "sync"),
    ]


def test_assigning_and_transferring_from_kfadmin_archive_each_session_event_once(
    emulator, kf_account_row, live_server
):
    from sessions_app.services import session_assign, session_transfer
    from tests.factories import supervisor
    from tests.sessions_app.test_views_support import emulated_agent, waiting_customer

    boss = supervisor(kf_account_row)
    emulator.control("set_callback", url=f"{live_server.url}/wechat/callback/{kf_account_row.appid}/", mode="safe")
    alice = emulated_agent(kf_account_row, emulator, "alice")
    bob = emulated_agent(kf_account_row, emulator, "bob")
    customer = waiting_customer(kf_account_row, emulator)
    session = session_assign(account=kf_account_row, customer=customer, agent=alice, actor=boss, confirmed=True)
    session_transfer(account=kf_account_row, session=session, to_agent=bob, actor=boss, confirmed=True)
    emulator.control("flush_callbacks")
    # The callbacks archived each session event once, as kf_create_session's 1001.
    assert list(
        MessageRecord.objects.filter(opercode__gte=1000, opercode__lt=2000).order_by("id").values_list("opercode", flat=True)
    ) == [1001, 1004, 1001]

    for _ in range(2):
        history_sync(account_id=kf_account_row.pk)

    exported = sorted(
        (r.opercode, r.worker)
        for r in records_iter_export(account=kf_account_row, openid=customer.openid, kinds=["session"])
    )  # all in one second: their order within it is the archive's key order
    assert exported == [(1000, ""), (1002, alice.kf_account), (1002, bob.kf_account), (1004, alice.kf_account)]
    assert not MessageRecord.objects.exclude(source="sync").filter(opercode__lt=2000).exists()


# ------------------------------------------------------------------ reply windows


def test_synced_customer_messages_open_the_reply_window(kf_account_row, emulator):
    now = now_s()
    _append(emulator, time=now - 3 * 86400, text="很久以前", openid="o_old")
    _append(emulator, time=now - 3600, text="刚才", openid="o_recent", opercode=2001, worker="")
    _append(emulator, time=now - 3500, text="客服回复", openid="o_agent_only", opercode=2002)

    records_sync_window(account_id=kf_account_row.pk, start=at(now - 3 * 86400 - 10), end=at(now - 3 * 86400 + 10))
    records_sync_window(account_id=kf_account_row.pk, start=at(now - 7200), end=at(now))

    recent = Customer.objects.get(official_account=kf_account_row, openid="o_recent")
    assert recent.window_open() and recent.window_remaining == 5
    assert recent.last_message_at == at(now - 3600)
    # Too old to hold a window: the sync leaves it alone; agents' messages open nothing.
    assert not Customer.objects.filter(openid__in=["o_old", "o_agent_only"]).exists()


def test_a_message_already_counted_from_its_callback_does_not_refill_the_budget(kf_account_row, emulator):
    t = now_s() - 600
    _provisional(kf_account_row, time=t, text="在吗")
    customer = Customer.objects.create(official_account=kf_account_row, openid="o_same_customer")
    customer_touch(kf_account_row, "o_same_customer", at(t), "message")
    customer.refresh_from_db()
    customer_window_consume(customer)
    _append(emulator, time=t + 1, text="在吗", opercode=2001, worker="")

    records_sync_window(account_id=kf_account_row.pk, start=at(t - 300), end=at(t + 300))

    customer.refresh_from_db()
    assert customer.window_remaining == 4
    assert MessageRecord.objects.get().source == "sync"


@pytest.mark.parametrize("path", ["postgresql", "portable"])
def test_agents_replies_in_the_history_use_up_the_budget_of_a_synced_message(kf_account_row, emulator, monkeypatch, path):
    if path == "portable":
        from sessions_app import services

        monkeypatch.setattr(sync, "_insert_postgresql", sync._insert_portable)
        monkeypatch.setattr(services.connection, "vendor", "sqlite")
    t = now_s() - 3600
    _append(emulator, time=t, text="发票怎么开？", opercode=2001, worker="")
    for i in range(3):
        _append(emulator, time=t + 10 + i, text=f"回复{i}", opercode=2002)
    _append(emulator, time=t + 20, text="另一位客户", opercode=2001, worker="", openid="o_other")

    for _ in range(2):
        records_sync_window(account_id=kf_account_row.pk, start=at(t - 300), end=at(t + 300))

    customer = Customer.objects.get(official_account=kf_account_row, openid="o_same_customer")
    assert customer.window_remaining == 2
    assert Customer.objects.get(official_account=kf_account_row, openid="o_other").window_remaining == 5


def test_replies_before_the_customers_last_message_do_not_count(kf_account_row, emulator):
    t = now_s() - 3600
    _append(emulator, time=t, text="在吗", opercode=2001, worker="")
    _append(emulator, time=t + 5, text="在的", opercode=2002)
    _append(emulator, time=t + 60, text="那我的订单呢", opercode=2001, worker="")
    _append(emulator, time=t + 70, text="马上查", opercode=2002)

    records_sync_window(account_id=kf_account_row.pk, start=at(t - 300), end=at(t + 300))

    assert Customer.objects.get(openid="o_same_customer").window_remaining == 4


def test_replies_synced_after_a_callback_counted_the_message_use_up_its_budget(kf_account_row, emulator):
    t = now_s() - 600
    _provisional(kf_account_row, time=t, text="在吗")
    customer_touch(kf_account_row, "o_same_customer", at(t), "message")
    _append(emulator, time=t, text="在吗", opercode=2001, worker="")
    for i in range(4):
        _append(emulator, time=t + 30 + i, text=f"手机上回复{i}", opercode=2002)

    records_sync_window(account_id=kf_account_row.pk, start=at(t - 300), end=at(t + 300))

    assert Customer.objects.get(openid="o_same_customer").window_remaining == 1


def test_kfadmins_own_send_is_counted_once_when_its_copy_is_synced(kf_account_row, emulator):
    t = now_s() - 600
    customer_touch(kf_account_row, "o_same_customer", at(t), "message")
    customer = Customer.objects.get(openid="o_same_customer")
    customer_window_consume(customer)  # WeChat accepted it; archived at our request time
    _provisional(kf_account_row, time=t + 30, micro=400000, text="好的", opercode=2002,
                 worker="kf1@test_oa", source="kfadmin")
    _append(emulator, time=t, text="在吗", opercode=2001, worker="")
    _append(emulator, time=t + 31, text="好的", opercode=2002)

    records_sync_window(account_id=kf_account_row.pk, start=at(t - 300), end=at(t + 300))

    assert Customer.objects.get(openid="o_same_customer").window_remaining == 4


def test_replies_after_a_click_use_its_grant_and_those_before_it_the_messages(kf_account_row, emulator):
    t = now_s() - 30
    customer_touch(kf_account_row, "o_same_customer", at(t - 20), "message")
    customer_touch(kf_account_row, "o_same_customer", at(t), "event")  # a menu click
    _append(emulator, time=t - 20, text="在吗", opercode=2001, worker="")
    for i in range(4):
        _append(emulator, time=t - 19 + i, text=f"回复{i}", opercode=2002)
    _append(emulator, time=t + 1, text="点击后的回复", opercode=2002)

    records_sync_window(account_id=kf_account_row.pk, start=at(t - 300), end=at(t + 5))

    # 5 - 4 = 1 left of the message's grant; the click's own 3, one used since.
    customer = Customer.objects.get(openid="o_same_customer")
    assert (customer.window_remaining, customer.event_remaining) == (1, 2)


def test_the_budget_from_history_matches_wechats_after_another_tool_replied(kf_account_row, emulator):
    from accounts.clients import wechat_client_for
    from sessions_app.selectors import customer_window_state
    from tests.sessions_app.test_views_support import emulated_agent, waiting_customer

    alice = emulated_agent(kf_account_row, emulator, "alice")
    customer = waiting_customer(kf_account_row, emulator, text="我的退款到账了吗？")
    emulator.state.agent_accept(appid=emulator.appid, kf_account=alice.kf_account, openid=customer.openid)
    client = wechat_client_for(kf_account_row)
    for text in ("您好", "正在查询", "请稍候", "已到账"):  # sent by another tool: kfadmin never saw them
        client.send_message(customer.openid, "text", {"content": text}, kf_account=alice.kf_account)

    history_sync(account_id=kf_account_row.pk)

    customer.refresh_from_db()
    wechat = emulator.state.customer(appid=emulator.appid, openid=customer.openid)
    assert customer_window_state(customer=customer).remaining == wechat["remaining"] == 1


# ------------------------------------------------------------------ portable path


def test_the_portable_storage_path_gives_the_same_archive(kf_account_row, emulator, monkeypatch):
    monkeypatch.setattr(sync, "_insert_postgresql", sync._insert_portable)
    monkeypatch.setattr(sync, "PAGE_SIZE", 300)
    now = now_s()
    emulator.control("generate_records", count=1000, start=now - 86400, end=now - 5, seed=4)
    t = now - 7200
    _append(emulator, time=t, text="重复")
    _append(emulator, time=t, text="重复")
    _provisional(kf_account_row, time=t - 1, text="重复", openid="o_same_customer")

    for _ in range(2):
        history_sync(account_id=kf_account_row.pk, until=at(now))

    assert archive_records(kf_account_row) == emulator_records(emulator)
    assert not MessageRecord.objects.exclude(source="sync").exists()



@pytest.mark.parametrize("split", [True, False], ids=["split", "staged"])
def test_a_page_overlapping_the_archive_stores_only_what_is_new(kf_account_row, monkeypatch, split):
    """The rows after the newest archived record of the page's span are COPYed
    straight in, the rest go through staging: either way nothing is stored twice and
    identical records of one second are all kept."""
    from django.db import transaction

    monkeypatch.setattr(sync, "SPLIT_PAGES", split)
    base = 1_700_000_000

    def row(t: int, text: str, seq: int = 0):
        return (t, "kf1@test_oa", "o_c", 2003, text, record_digest("kf1@test_oa", "o_c", 2003, text), seq)

    first = [row(base, "a"), row(base + 1, "b"), row(base + 2, "c")]
    with transaction.atomic():
        assert len(sync._insert_postgresql(kf_account_row.pk, first)) == 3
    again = [row(base + 1, "b"), row(base + 2, "c"), row(base + 2, "c2"), row(base + 3, "d"), row(base + 3, "d", 1)]
    with transaction.atomic():
        inserted = sync._insert_postgresql(kf_account_row.pk, again)
    assert sorted((t, seq) for t, _d, seq in inserted) == [(base + 2, 0), (base + 3, 0), (base + 3, 1)]
    texts = sorted(MessageRecord.objects.filter(official_account=kf_account_row).values_list("text", flat=True))
    assert texts == ["a", "b", "c", "c2", "d", "d"]
