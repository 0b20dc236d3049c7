"""Waiting-queue and sessions sync against the emulator over loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.clients import wechat_client_for
from accounts.models import Agent, OfficialAccount, SyncState
from accounts.sync import agents_sync
from sessions_app.models import Customer, KfSession
from sessions_app.sync import QUEUE_RESOLVE_LIMIT, queue_sync, sessions_sync
from tests.factories import CustomerFactory, KfSessionFactory

pytestmark = pytest.mark.django_db


def live(openid: str) -> KfSession:
    return KfSession.objects.exclude(state="closed").get(customer__openid=openid)


def unix(value: int) -> datetime:
    return datetime.fromtimestamp(value, tz=UTC)


def wechat_sessions(emulator) -> dict[str, tuple[str, int]]:
    state = emulator.state.state(appid=emulator.appid, customers=False)["official_accounts"][0]
    return {s["openid"]: (s["kf_account"], s["createtime"]) for s in state["sessions"]}


# --------------------------------------------------------------------------- queue


def test_queue_sync_stores_the_true_count_beyond_the_100_listed(emulator, kf_account_row):
    openids = [emulator.customer(openid=f"o_wait_{n:03d}") for n in range(130)]
    result = queue_sync(account_id=kf_account_row.pk)
    assert (result.count, result.listed, result.queued) == (130, 100, 100)
    kf_account_row.refresh_from_db()
    assert kf_account_row.waiting_count == 130
    waiting = set(KfSession.objects.filter(state="waiting").values_list("customer__openid", flat=True))
    assert waiting == set(openids[:100])  # WeChat lists the 100 who arrived first
    state = SyncState.objects.get(official_account=kf_account_row, job="queue")
    assert state.last_success_at is not None and state.last_error == ""


def test_a_waiting_customer_gets_a_session_and_an_open_window(emulator, kf_account_row):
    openid = emulator.customer(text="在吗")
    latest = unix(emulator.state.customer(appid=emulator.appid, openid=openid)["latest_time"])
    queue_sync(account_id=kf_account_row.pk)
    session = live(openid)
    assert (session.state, session.agent, session.latest_time, session.created_at) == ("waiting", None, latest, latest)
    customer = Customer.objects.get(openid=openid)
    assert customer.window_remaining == 5
    assert customer.window_expires_at == latest + timedelta(hours=48)
    assert customer.last_message_at == latest


def test_a_second_run_keeps_one_waiting_row_and_follows_latest_time(emulator, kf_account_row):
    openid = emulator.customer()
    queue_sync(account_id=kf_account_row.pk)
    first = live(openid)
    emulator.state.advance(30)
    emulator.customer(openid=openid, text="还在吗？")
    queue_sync(account_id=kf_account_row.pk)
    again = live(openid)
    assert again.pk == first.pk
    # WeChat's times are whole seconds: a second may tick between the two messages.
    assert timedelta(seconds=30) <= again.latest_time - first.latest_time <= timedelta(seconds=31)
    assert KfSession.objects.count() == 1


def test_customers_who_left_the_queue_open_with_their_agent(emulator, kf_account_row):
    alice = emulator.bound_agent("alice")
    taken, stays = emulator.customer(), emulator.customer()
    queue_sync(account_id=kf_account_row.pk)
    waiting_row = live(taken)
    accepted = emulator.control("agent_accept", kf_account=alice, openid=taken)

    result = queue_sync(account_id=kf_account_row.pk)

    assert (result.count, result.accepted, result.closed) == (1, 1, 0)
    session = live(taken)
    assert session.pk == waiting_row.pk
    assert (session.state, session.agent.kf_account, session.accepted_at) == ("open", alice, unix(accepted["createtime"]))
    assert live(stays).state == "waiting"


def test_a_waiting_row_nobody_serves_any_more_is_closed(emulator, kf_account_row):
    emulator.state.add_customer(appid=emulator.appid, openid="o_gave_up")
    KfSessionFactory(official_account=kf_account_row, customer__openid="o_gave_up")
    result = queue_sync(account_id=kf_account_row.pk)
    assert result.closed == 1
    session = KfSession.objects.get(customer__openid="o_gave_up")
    assert session.state == "closed" and session.closed_at is not None


def test_beyond_the_lookup_limit_left_customers_close_and_the_sessions_sync_reopens_them(emulator, kf_account_row):
    alice = emulator.bound_agent("alice")
    total = QUEUE_RESOLVE_LIMIT + 5
    openids = [emulator.customer(openid=f"o_many_{n:02d}") for n in range(total)]
    queue_sync(account_id=kf_account_row.pk)
    for openid in openids:
        emulator.control("agent_accept", kf_account=alice, openid=openid)
    emulator.state.clear_calls()

    result = queue_sync(account_id=kf_account_row.pk)

    assert len([c for c in emulator.calls if c.path == "/customservice/kfsession/getsession"]) == QUEUE_RESOLVE_LIMIT
    assert (result.accepted, result.closed) == (QUEUE_RESOLVE_LIMIT, 5)
    sessions_sync(account_id=kf_account_row.pk)
    assert KfSession.objects.filter(state="open", agent__kf_account=alice).count() == total
    assert {s.customer.openid for s in KfSession.objects.filter(state="open")} == set(openids)


def test_when_the_list_is_cut_short_unlisted_waiting_rows_stay(emulator, kf_account_row):
    emulator.state.add_customer(appid=emulator.appid, openid="o_unknown")
    KfSessionFactory(official_account=kf_account_row, customer__openid="o_unknown")
    for n in range(101):
        emulator.customer(openid=f"o_q_{n:03d}")
    queue_sync(account_id=kf_account_row.pk)
    assert live("o_unknown").state == "waiting"
    assert not any(c.path.endswith("/getsession") for c in emulator.calls)


def test_a_served_customer_who_queues_again_gets_a_new_waiting_row(emulator, kf_account_row):
    alice = emulator.bound_agent("alice")
    openid = emulator.customer()
    emulator.control("agent_accept", kf_account=alice, openid=openid)
    sessions_sync(account_id=kf_account_row.pk)
    served = live(openid)
    wechat_client_for(kf_account_row).close_session(alice, openid)
    emulator.customer(openid=openid, text="又有问题")

    queue_sync(account_id=kf_account_row.pk)

    served.refresh_from_db()
    assert served.state == "closed"
    assert live(openid).state == "waiting" and live(openid).pk != served.pk


# --------------------------------------------------------------------------- sessions


def test_sessions_sync_opens_a_session_per_listed_customer(emulator, kf_account_row):
    alice, bob = emulator.bound_agent("alice"), emulator.bound_agent("bob")
    for agent in (alice, alice, bob):
        emulator.customer()
        emulator.control("agent_accept", kf_account=agent)
    agents_sync(account_id=kf_account_row.pk)

    result = sessions_sync(account_id=kf_account_row.pk)

    assert (result.agents, result.open, result.opened, result.closed) == (2, 3, 3, 0)
    for openid, (kf_account, createtime) in wechat_sessions(emulator).items():
        session = live(openid)
        assert (session.state, session.agent.kf_account) == ("open", kf_account)
        assert session.accepted_at == unix(createtime)
    assert SyncState.objects.get(official_account=kf_account_row, job="sessions").last_success_at is not None


def test_a_waiting_row_becomes_open_in_place(emulator, kf_account_row):
    alice = emulator.bound_agent("alice")
    openid = emulator.customer()
    queue_sync(account_id=kf_account_row.pk)
    waiting = live(openid)
    emulator.control("agent_accept", kf_account=alice, openid=openid)
    agents_sync(account_id=kf_account_row.pk)
    sessions_sync(account_id=kf_account_row.pk)
    session = live(openid)
    assert session.pk == waiting.pk
    assert (session.state, session.agent.kf_account) == ("open", alice)
    assert session.created_at == waiting.created_at


def test_a_transfer_moves_the_row_to_the_new_agent(emulator, kf_account_row):
    alice, bob = emulator.bound_agent("alice"), emulator.bound_agent("bob")
    openid = emulator.customer()
    emulator.control("agent_accept", kf_account=alice, openid=openid)
    sessions_sync(account_id=kf_account_row.pk)
    before = live(openid)
    emulator.control("agent_transfer", openid=openid, to_kf_account=bob)

    result = sessions_sync(account_id=kf_account_row.pk)

    assert (result.transferred, result.opened, result.closed) == (1, 0, 0)
    after = live(openid)
    assert after.pk == before.pk
    assert after.agent.kf_account == bob
    assert after.accepted_at == before.accepted_at
    assert KfSession.objects.count() == 1


def test_closed_sessions_are_closed_and_a_new_one_gets_a_new_row(emulator, kf_account_row):
    alice = emulator.bound_agent("alice")
    openid = emulator.customer()
    emulator.control("agent_accept", kf_account=alice, openid=openid)
    sessions_sync(account_id=kf_account_row.pk)
    first = live(openid)
    wechat_client_for(kf_account_row).close_session(alice, openid)
    before = timezone.now()

    assert sessions_sync(account_id=kf_account_row.pk).closed == 1

    first.refresh_from_db()
    assert first.state == "closed" and first.closed_at >= before
    wechat_client_for(kf_account_row).create_session(alice, openid)
    sessions_sync(account_id=kf_account_row.pk)
    second = live(openid)
    assert second.pk != first.pk and second.state == "open"
    assert KfSession.objects.filter(customer__openid=openid).count() == 2


def test_only_bound_agents_are_asked_for_their_sessions(emulator, kf_account_row):
    emulator.bound_agent("alice")
    wechat_client_for(kf_account_row).add_account(emulator.kf_account("unbound"), "unbound")
    agents_sync(account_id=kf_account_row.pk)
    emulator.state.clear_calls()
    sessions_sync(account_id=kf_account_row.pk)
    asked = [c.query["kf_account"] for c in emulator.calls if c.path.endswith("/getsessionlist")]
    assert asked == [emulator.kf_account("alice")]


def test_a_session_of_an_agent_not_listed_yet_is_kept(emulator, kf_account_row):
    """A callback saw the new agent take a customer before the agents sync listed it."""
    agents_sync(account_id=kf_account_row.pk)
    newcomer = emulator.bound_agent("newcomer")
    openid = emulator.customer()
    emulator.control("agent_accept", kf_account=newcomer, openid=openid)
    stub = Agent.objects.create(official_account=kf_account_row, kf_account=newcomer)
    KfSessionFactory(official_account=kf_account_row, customer__openid=openid, state="open", agent=stub,
                     accepted_at=timezone.now() - timedelta(seconds=5))
    result = sessions_sync(account_id=kf_account_row.pk)
    assert result.closed == 0
    assert live(openid).agent == stub


def test_a_session_of_an_unbound_agent_is_closed(emulator, kf_account_row):
    agents_sync(account_id=kf_account_row.pk)
    wechat_client_for(kf_account_row).add_account(emulator.kf_account("idle"), "idle")
    stub = Agent.objects.create(official_account=kf_account_row, kf_account=emulator.kf_account("idle"))
    KfSessionFactory(official_account=kf_account_row, customer__openid="o_orphan", state="open", agent=stub,
                     accepted_at=timezone.now() - timedelta(minutes=5))
    assert sessions_sync(account_id=kf_account_row.pk).closed == 1
    assert not KfSession.objects.exclude(state="closed").exists()


def test_an_agent_deleted_since_the_agents_sync_counts_as_serving_nobody(emulator, kf_account_row):
    alice = emulator.bound_agent("alice")
    openid = emulator.customer()
    emulator.control("agent_accept", kf_account=alice, openid=openid)
    sessions_sync(account_id=kf_account_row.pk)
    wechat_client_for(kf_account_row).delete_account(alice)
    result = sessions_sync(account_id=kf_account_row.pk)
    assert result.closed == 1
    assert not KfSession.objects.exclude(state="closed").exists()


def test_sessions_sync_lists_the_agents_first_on_a_fresh_install(emulator, kf_account_row):
    alice = emulator.bound_agent("alice")
    emulator.customer()
    emulator.control("agent_accept", kf_account=alice)
    assert not Agent.objects.exists()
    sessions_sync(account_id=kf_account_row.pk)
    assert KfSession.objects.get().agent == Agent.objects.get(kf_account=alice)
    assert SyncState.objects.get(official_account=kf_account_row, job="agents").last_success_at is not None


def test_a_session_changed_after_the_sync_started_is_left_alone(emulator, kf_account_row, monkeypatch):
    """A callback that lands between the sync's read and its write is newer."""
    alice = emulator.bound_agent("alice")
    agents_sync(account_id=kf_account_row.pk)
    customer = CustomerFactory(official_account=kf_account_row, openid="o_callback")
    import sessions_app.sync as sync_module

    real_store = sync_module._sessions_store

    def store_after_a_callback(account, *, lists, started):
        KfSession.objects.create(
            official_account=account, customer=customer, state="open", agent=Agent.objects.get(kf_account=alice),
            accepted_at=timezone.now(),
        )
        return real_store(account, lists=lists, started=started)

    monkeypatch.setattr(sync_module, "_sessions_store", store_after_a_callback)
    sessions_sync(account_id=kf_account_row.pk)
    assert live("o_callback").state == "open"


def test_sessions_of_other_accounts_are_untouched(emulator, kf_account_row):
    emulator.bound_agent("alice")
    other = KfSessionFactory(state="open")
    sessions_sync(account_id=kf_account_row.pk)
    other.refresh_from_db()
    assert other.state == "open"
    assert OfficialAccount.objects.count() == 2



def test_the_sessions_task_renews_its_claim_after_each_agents_list(emulator, kf_account_row, monkeypatch):
    from accounts import sync as account_sync
    from sessions_app.tasks import sync_sessions_task

    for prefix in ("alice", "bob", "carol"):
        emulator.bound_agent(prefix)
    agents_sync(account_id=kf_account_row.pk)
    renew = account_sync.sync_state_renew
    renewals = []

    def counting_renew(**kwargs):
        renewals.append(kwargs["job"])
        return renew(**kwargs)

    monkeypatch.setattr(account_sync, "sync_state_renew", counting_renew)

    result = sync_sessions_task.apply(args=[kf_account_row.pk]).get()

    assert result["agents"] == 3
    assert renewals == ["sessions"] * 3  # one heartbeat per getsessionlist call
