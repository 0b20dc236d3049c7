"""session_assign / session_close / session_transfer against the emulator (real HTTP)."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent
from kfadmin.wechat import WeChatConflict, WeChatRateLimited
from sessions_app.models import KfSession
from sessions_app.services import (
    SessionNeedsConfirmation,
    SessionStateError,
    SessionTransferIncomplete,
    session_assign,
    session_close,
    session_transfer,
)
from tests.factories import KfSessionFactory
from tests.sessions_app.test_views_support import (
    emulated_agent,
    served_customer,
    waiting_customer,
    wired_account,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]

CREATE = "/customservice/kfsession/create"
CLOSE = "/customservice/kfsession/close"


@pytest.fixture
def account(emulator):
    return wired_account(emulator)


def session_calls(emulator):
    return [(c.path, c.json) for c in emulator.calls if c.path.startswith("/customservice/kfsession/")]


def test_assign_creates_the_session_at_wechat_and_opens_it_locally(account, emulator, boss):
    alice = emulated_agent(account, emulator, "alice")
    customer = waiting_customer(account, emulator)

    session = session_assign(account=account, customer=customer, agent=alice, actor=boss)

    assert session_calls(emulator) == [(CREATE, {"kf_account": alice.kf_account, "openid": customer.openid})]
    assert emulator.state.customer(appid=emulator.appid, openid=customer.openid)["kf_account"] == alice.kf_account
    session.refresh_from_db()
    assert (session.state, session.agent_id) == (KfSession.State.OPEN, alice.pk)
    assert session.accepted_at is not None
    assert KfSession.objects.filter(customer=customer).count() == 1  # the waiting row became the open one
    event = AuditEvent.objects.get(action="session_assign")
    assert (event.actor, event.result, event.target) == (boss, "ok", customer.openid)


def test_assign_to_an_offline_agent_asks_for_confirmation_without_calling_wechat(account, emulator, boss):
    bob = emulated_agent(account, emulator, "bob", online=False)
    customer = waiting_customer(account, emulator)

    with pytest.raises(SessionNeedsConfirmation) as raised:
        session_assign(account=account, customer=customer, agent=bob, actor=boss)

    assert "offline" in raised.value.warnings[0]
    assert session_calls(emulator) == []
    assert KfSession.objects.get(customer=customer).state == KfSession.State.WAITING


def test_assign_to_a_full_agent_asks_for_confirmation(account, emulator, boss):
    account.agent_capacity = 1
    account.save()
    alice = emulated_agent(account, emulator, "alice")
    served_customer(account, alice, emulator)
    customer = waiting_customer(account, emulator)

    with pytest.raises(SessionNeedsConfirmation) as raised:
        session_assign(account=account, customer=customer, agent=alice, actor=boss)
    assert "1 of 1" in raised.value.warnings[0]

    session_assign(account=account, customer=customer, agent=alice, actor=boss, confirmed=True)
    assert KfSession.objects.get(customer=customer, state="open").agent == alice


def test_confirmed_assign_to_an_offline_agent_reports_wechats_65415(account, emulator, boss):
    bob = emulated_agent(account, emulator, "bob", online=False)
    customer = waiting_customer(account, emulator)

    with pytest.raises(WeChatConflict) as raised:
        session_assign(account=account, customer=customer, agent=bob, actor=boss, confirmed=True)

    assert raised.value.errcode == 65415
    assert "not online" in raised.value.explanation
    assert KfSession.objects.get(customer=customer).state == KfSession.State.WAITING
    event = AuditEvent.objects.get(action="session_assign")
    assert (event.result, event.errcode) == ("error", 65415)
    assert event.params["confirmed_warnings"]


def test_assign_a_customer_served_by_another_agent_reports_65414(account, emulator, boss):
    alice = emulated_agent(account, emulator, "alice")
    carol = emulated_agent(account, emulator, "carol")
    session = served_customer(account, alice, emulator)

    with pytest.raises(WeChatConflict) as raised:
        session_assign(account=account, customer=session.customer, agent=carol, actor=boss)

    assert raised.value.errcode == 65414
    session.refresh_from_db()
    assert session.agent == alice


def test_assign_a_customer_with_no_session_creates_one(account, emulator, boss):
    alice = emulated_agent(account, emulator, "alice")
    customer = waiting_customer(account, emulator)
    KfSession.objects.filter(customer=customer).update(state=KfSession.State.CLOSED)

    session_assign(account=account, customer=customer, agent=alice, actor=boss)

    assert KfSession.objects.get(customer=customer, state="open").agent == alice
    assert KfSession.objects.filter(customer=customer).count() == 2


def test_close_ends_the_session_at_wechat_and_locally(account, emulator, boss):
    alice = emulated_agent(account, emulator, "alice")
    session = served_customer(account, alice, emulator)
    emulator.state.clear_calls()

    result = session_close(account=account, session=session, actor=boss)

    assert not result.already_closed
    assert session_calls(emulator) == [(CLOSE, {"kf_account": alice.kf_account, "openid": session.customer.openid})]
    assert emulator.state.customer(appid=emulator.appid, openid=session.customer.openid)["kf_account"] == ""
    session.refresh_from_db()
    assert session.state == KfSession.State.CLOSED and session.closed_at is not None
    assert AuditEvent.objects.get(action="session_close").result == "ok"


def test_close_of_a_session_wechat_already_ended_closes_the_stale_copy(account, emulator, boss):
    alice = emulated_agent(account, emulator, "alice")
    session = served_customer(account, alice, emulator)
    emulator.state.customer_writes(appid=emulator.appid, openid=session.customer.openid, text="x")
    # WeChat closed it meanwhile (the agent ended it in their own client).
    session_close(account=account, session=session, actor=boss)
    stale = KfSessionFactory(official_account=account, customer=session.customer, agent=alice, state="open")

    result = session_close(account=account, session=stale, actor=boss)

    assert result.already_closed
    stale.refresh_from_db()
    assert stale.state == KfSession.State.CLOSED
    assert AuditEvent.objects.filter(action="session_close", errcode=65413).exists()


def test_close_refuses_a_waiting_session_without_calling_wechat(account, emulator, boss):
    customer = waiting_customer(account, emulator)
    session = KfSession.objects.get(customer=customer)

    with pytest.raises(SessionStateError):
        session_close(account=account, session=session, actor=boss)
    assert session_calls(emulator) == []


def test_transfer_closes_for_the_old_agent_then_creates_for_the_new(account, emulator, boss):
    alice = emulated_agent(account, emulator, "alice")
    carol = emulated_agent(account, emulator, "carol")
    session = served_customer(account, alice, emulator)
    openid = session.customer.openid
    emulator.state.clear_calls()

    moved = session_transfer(account=account, session=session, to_agent=carol, actor=boss)

    assert session_calls(emulator) == [
        (CLOSE, {"kf_account": alice.kf_account, "openid": openid}),
        (CREATE, {"kf_account": carol.kf_account, "openid": openid}),
    ]
    assert emulator.state.customer(appid=emulator.appid, openid=openid)["kf_account"] == carol.kf_account
    assert moved.pk == session.pk
    moved.refresh_from_db()
    assert (moved.state, moved.agent) == (KfSession.State.OPEN, carol)
    event = AuditEvent.objects.get(action="session_transfer")
    assert (event.result, event.params["to_kf_account"]) == ("ok", carol.kf_account)


def test_transfer_whose_second_step_fails_leaves_the_customer_in_no_session_and_says_so(account, emulator, boss):
    alice = emulated_agent(account, emulator, "alice")
    carol = emulated_agent(account, emulator, "carol")
    session = served_customer(account, alice, emulator)
    # Carol logs out after kfadmin last saw her online.
    emulator.state.agent_online(appid=emulator.appid, kf_account=carol.kf_account, online=False)

    with pytest.raises(SessionTransferIncomplete) as raised:
        session_transfer(account=account, session=session, to_agent=carol, actor=boss)

    assert raised.value.error.errcode == 65415
    assert "no longer serves this customer" in raised.value.explanation
    assert "not online" in raised.value.explanation
    assert emulator.state.customer(appid=emulator.appid, openid=session.customer.openid)["kf_account"] == ""
    session.refresh_from_db()
    assert session.state == KfSession.State.CLOSED
    event = AuditEvent.objects.get(action="session_transfer")
    assert (event.result, event.errcode, event.params["step"]) == ("error", 65415, "create")


def test_transfer_whose_first_step_fails_changes_nothing(account, emulator, boss):
    alice = emulated_agent(account, emulator, "alice")
    carol = emulated_agent(account, emulator, "carol")
    session = served_customer(account, alice, emulator)
    emulator.control("add_fault", kind="errcode", errcode=45009, path_prefix=CLOSE, next=1)

    with pytest.raises(WeChatRateLimited) as raised:
        session_transfer(account=account, session=session, to_agent=carol, actor=boss)

    assert raised.value.errcode == 45009
    assert [c.path for c in emulator.calls if c.path == CREATE] == []
    session.refresh_from_db()
    assert (session.state, session.agent) == (KfSession.State.OPEN, alice)


def test_transfer_to_an_offline_agent_asks_for_confirmation_first(account, emulator, boss):
    alice = emulated_agent(account, emulator, "alice")
    bob = emulated_agent(account, emulator, "bob", online=False)
    session = served_customer(account, alice, emulator)
    emulator.state.clear_calls()

    with pytest.raises(SessionNeedsConfirmation):
        session_transfer(account=account, session=session, to_agent=bob, actor=boss)
    assert session_calls(emulator) == []


def test_transfer_to_the_same_agent_is_refused(account, emulator, boss):
    alice = emulated_agent(account, emulator, "alice")
    session = served_customer(account, alice, emulator)
    with pytest.raises(SessionStateError):
        session_transfer(account=account, session=session, to_agent=alice, actor=boss)
