"""The live tail against the emulator over HTTP, into PostgreSQL: a customer's message
in an open session (which WeChat does not push) is stored once, opens the reply
window, and nothing is read for an account without open sessions."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import AgentPresence, SyncState
from messaging import tasks
from messaging.models import MessageRecord
from messaging.selectors import records_freshness, tail_accounts_due
from messaging.services import conversation_watch
from messaging.sync import TAIL_LOOKBACK, history_sync, live_tail, tail_window
from sessions_app.models import Customer, KfSession
from sessions_app.selectors import customer_window_state
from tests.factories import AgentFactory, CustomerFactory, KfSessionFactory, MessageRecordFactory
from tests.messaging.history_helpers import msglist_calls

pytestmark = pytest.mark.django_db


@pytest.fixture
def in_session(kf_account_row, emulator):
    """A customer served by an agent, in the emulator and in kfadmin's copy; the
    customer's earlier messages are archived (as the history sync left them)."""
    kf = emulator.bound_agent("mei")
    openid = emulator.customer("o_live_customer", text="在吗")
    emulator.control("agent_accept", kf_account=kf, openid=openid)
    history_sync(account_id=kf_account_row.pk)
    agent = AgentFactory(official_account=kf_account_row, kf_account=kf)
    customer = Customer.objects.get(official_account=kf_account_row, openid=openid)
    session = KfSessionFactory(
        official_account=kf_account_row, customer=customer, agent=agent, state=KfSession.State.OPEN,
        accepted_at=timezone.now(),
    )
    SyncState.objects.get_or_create(official_account=kf_account_row, job=SyncState.Job.TAIL)
    emulator.state.clear_calls()
    return session


def _customer_texts(account, openid):
    return list(
        MessageRecord.objects.filter(
            official_account=account, openid=openid, opercode__in=MessageRecord.OperCode.CUSTOMER
        ).values_list("text", flat=True).order_by("time", "id")
    )


def test_a_message_written_in_a_session_is_not_pushed_and_the_tail_stores_it(in_session, kf_account_row, emulator):
    openid = in_session.customer.openid
    # The budget of their earlier message is used up (kfadmin saw it an hour ago).
    earlier = timezone.now() - timedelta(hours=1)
    Customer.objects.filter(pk=in_session.customer.pk).update(
        window_remaining=0, last_message_at=earlier, window_expires_at=earlier + timedelta(hours=48)
    )
    answer = emulator.control("customer_writes", openid=openid, text="订单还没到")

    result = live_tail(account_id=kf_account_row.pk)

    assert answer["msgid"] is None  # WeChat's kf client got it, the callback URL did not
    assert result.stored == 1 and not result.error
    assert _customer_texts(kf_account_row, openid) == ["在吗", "订单还没到"]
    window = customer_window_state(customer=Customer.objects.get(pk=in_session.customer.pk))
    assert window.is_open and window.remaining == 5
    state = SyncState.objects.get(official_account=kf_account_row, job=SyncState.Job.TAIL)
    assert state.cursor is not None and state.last_success_at is not None
    assert records_freshness(account=kf_account_row).live


def test_running_the_tail_twice_stores_a_message_once(in_session, kf_account_row, emulator):
    emulator.control("customer_writes", openid=in_session.customer.openid, text="收到了吗")

    first = live_tail(account_id=kf_account_row.pk)
    again = live_tail(account_id=kf_account_row.pk)
    history = history_sync(account_id=kf_account_row.pk)

    assert (first.stored, again.stored, history.records_stored) == (1, 0, 0)
    assert _customer_texts(kf_account_row, in_session.customer.openid) == ["在吗", "收到了吗"]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_tails_store_each_message_once(in_session, kf_account_row, emulator):
    openid = in_session.customer.openid
    for n in range(5):
        emulator.control("customer_writes", openid=openid, text=f"第{n}条")
    emulator.control("customer_writes", openid=openid, text="same")
    emulator.control("customer_writes", openid=openid, text="same")
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            barrier.wait()
            results.append(live_tail(account_id=kf_account_row.pk))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors
    assert sum(r.stored for r in results) == 7
    # Two identical messages in one second are both kept, once each.
    assert sorted(_customer_texts(kf_account_row, openid)) == sorted(
        ["在吗", "第0条", "第1条", "第2条", "第3条", "第4条", "same", "same"]
    )


def test_the_window_starts_just_before_the_newest_synced_record(kf_account_row):
    now = timezone.now().replace(microsecond=0)
    MessageRecordFactory(official_account=kf_account_row, time=now - timedelta(seconds=100))
    # A send from kfadmin is newer, but WeChat may not have listed what came before it.
    MessageRecordFactory(official_account=kf_account_row, time=now - timedelta(seconds=5), source="kfadmin")

    start, end = tail_window(account_id=kf_account_row.pk, now=now)

    assert end == now
    assert start == now - timedelta(seconds=130)


def test_a_quiet_account_reads_at_most_the_lookback(kf_account_row):
    now = timezone.now().replace(microsecond=0)
    MessageRecordFactory(official_account=kf_account_row, time=now - timedelta(hours=3))

    start, _ = tail_window(account_id=kf_account_row.pk, now=now)

    assert start == now - TAIL_LOOKBACK


def test_nothing_is_read_for_an_account_without_open_sessions(kf_account_row, emulator):
    KfSessionFactory(official_account=kf_account_row)  # waiting: its messages are pushed
    emulator.state.clear_calls()

    queued = tasks.sync_all_tail_task()

    assert queued == 0
    assert tail_accounts_due() == []
    assert msglist_calls(emulator) == []


def test_an_open_session_or_a_watched_conversation_makes_an_account_due(kf_account_row):
    other = CustomerFactory(official_account=kf_account_row)
    assert tail_accounts_due() == []

    conversation_watch(account=kf_account_row)
    assert tail_accounts_due() == [kf_account_row.pk]

    SyncState.objects.filter(official_account=kf_account_row, job=SyncState.Job.TAIL).update(
        watched_until=timezone.now() - timedelta(seconds=1)
    )
    assert tail_accounts_due() == []

    KfSessionFactory(official_account=kf_account_row, customer=other, state=KfSession.State.OPEN,
                     agent=AgentFactory(official_account=kf_account_row))
    assert tail_accounts_due() == [kf_account_row.pk]


def test_watching_writes_at_most_twice_a_minute(kf_account_row):
    now = timezone.now()
    conversation_watch(account=kf_account_row, now=now)
    first = SyncState.objects.get(official_account=kf_account_row, job=SyncState.Job.TAIL).watched_until

    with CaptureQueriesContext(connection) as queries:
        conversation_watch(account=kf_account_row, now=now + timedelta(seconds=10))

    assert SyncState.objects.get(official_account=kf_account_row, job=SyncState.Job.TAIL).watched_until == first
    assert [q["sql"].split()[0] for q in queries] == ["UPDATE", "SELECT"]  # no INSERT that conflicts


@pytest.mark.parametrize("errcode,pause", [(45009, timedelta(minutes=15)), (45011, timedelta(minutes=1))])
def test_a_used_up_quota_pauses_the_tail_and_says_so(in_session, kf_account_row, emulator, errcode, pause):
    emulator.control("add_fault", kind="errcode", errcode=errcode, next=2, path_prefix="/customservice/msgrecord/getmsglist")
    now = timezone.now()

    result = live_tail(account_id=kf_account_row.pk, now=now)

    state = SyncState.objects.get(official_account=kf_account_row, job=SyncState.Job.TAIL)
    assert result.error and result.paused_until == now + pause
    assert state.paused_until == now + pause and str(errcode) not in state.last_error  # a sentence
    assert "quota" in state.last_error or "minute" in state.last_error
    assert tail_accounts_due() == []
    freshness = records_freshness(account=kf_account_row)
    assert not freshness.live and freshness.paused_until == now + pause

    # Refused again right after the pause: twice as long.
    again = live_tail(account_id=kf_account_row.pk, now=now + pause)
    assert again.paused_until == now + pause + 2 * pause

    # Then WeChat answers again: the pause is lifted.
    live_tail(account_id=kf_account_row.pk, now=now + 3 * pause)
    state.refresh_from_db()
    assert state.paused_until is None and state.last_error == ""


def test_the_tail_task_claims_the_account(in_session, kf_account_row, emulator):
    emulator.control("customer_writes", openid=in_session.customer.openid, text="任务")

    result = tasks.sync_tail_task(kf_account_row.pk)

    assert result["stored"] == 1
    state = SyncState.objects.get(official_account=kf_account_row, job=SyncState.Job.TAIL)
    assert state.running_token == ""  # released
    assert not AgentPresence.objects.exists()  # the tail touches records only


def test_a_run_that_finds_nothing_new_stores_nothing_and_stays_cheap(in_session, kf_account_row, emulator,
                                                                    django_assert_max_num_queries):
    emulator.control("customer_writes", openid=in_session.customer.openid, text="一条")
    live_tail(account_id=kf_account_row.pk)

    # Account, window, token, the stored keys of the re-read records, the tail's row.
    with django_assert_max_num_queries(5):
        again = live_tail(account_id=kf_account_row.pk)

    assert again.records >= 1 and again.stored == 0
