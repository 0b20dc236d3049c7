"""Agents and online-list sync against the emulator over loopback."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.utils import timezone

from accounts.clients import wechat_client_for
from accounts.models import Agent, AgentPresence, SyncState
from accounts.sync import agents_sync, online_sync
from kfadmin.wechat import WeChatForbidden
from tests.factories import AgentFactory, SyncStateFactory

pytestmark = pytest.mark.django_db


def agent(kf_account: str) -> Agent:
    return Agent.objects.get(kf_account=kf_account)


# --------------------------------------------------------------------------- agents


def test_agents_sync_stores_every_listed_agent_with_all_fields(emulator, kf_account_row):
    alice = emulator.bound_agent("alice", nickname="小美")
    client = wechat_client_for(kf_account_row)
    client.upload_avatar(alice, bytes.fromhex("ffd8ffe000104a464946") + b"\0" * 64)
    before = timezone.now()
    result = agents_sync(account_id=kf_account_row.pk)
    assert (result.listed, result.created, result.deleted, result.undeleted) == (1, 1, 0, 0)
    row = agent(alice)
    (listed,) = client.get_account_list().kf_list
    assert row.official_account == kf_account_row
    assert (row.kf_id, row.kf_nick, row.kf_wx) == (listed.kf_id, "小美", "wxid_alice")
    assert row.kf_id.isdigit()
    assert row.kf_headimgurl == listed.kf_headimgurl
    assert row.kf_headimgurl.startswith(emulator.base_url)
    assert (row.invite_wx, row.invite_expire_time, row.invite_status) == ("", None, "")
    assert row.last_listed_at >= before and row.deleted_at is None
    state = SyncState.objects.get(official_account=kf_account_row, job="agents")
    assert state.last_success_at >= before and state.last_error == ""


def test_agents_sync_records_each_invitation_state(emulator, kf_account_row):
    client = wechat_client_for(kf_account_row)
    for prefix in ("waits", "says_no", "too_late"):
        client.add_account(emulator.kf_account(prefix), prefix)
        client.invite_worker(emulator.kf_account(prefix), f"wx_{prefix}")
    client.add_account(emulator.kf_account("nobody"), "nobody")
    emulator.control("invite_respond", kf_account=emulator.kf_account("says_no"), action="reject")
    emulator.control("invite_respond", kf_account=emulator.kf_account("too_late"), action="expire")

    agents_sync(account_id=kf_account_row.pk)

    listed = {
        a["kf_account"]: a for a in emulator.state.state(appid=emulator.appid)["official_accounts"][0]["accounts"]
    }
    waits = agent(emulator.kf_account("waits"))
    assert (waits.invite_wx, waits.invite_status) == ("wx_waits", "waiting")
    expected = datetime.fromtimestamp(listed[waits.kf_account]["invite_expire_time"], tz=UTC)
    assert waits.invite_expire_time == expected
    assert waits.invite_expire_time.tzinfo is not None
    assert agent(emulator.kf_account("says_no")).invite_status == "rejected"
    assert agent(emulator.kf_account("too_late")).invite_status == "expired"
    nobody = agent(emulator.kf_account("nobody"))
    assert (nobody.invite_status, nobody.invite_wx, nobody.invite_expire_time, nobody.kf_wx) == ("", "", None, "")


def test_an_accepted_invitation_turns_into_a_binding(emulator, kf_account_row):
    client = wechat_client_for(kf_account_row)
    client.add_account(emulator.kf_account("joins"), "新人")
    client.invite_worker(emulator.kf_account("joins"), "wx_joins")
    agents_sync(account_id=kf_account_row.pk)
    emulator.control("invite_respond", kf_account=emulator.kf_account("joins"), action="accept")
    agents_sync(account_id=kf_account_row.pk)
    row = agent(emulator.kf_account("joins"))
    assert (row.kf_wx, row.invite_wx, row.invite_status, row.invite_expire_time) == ("wx_joins", "", "", None)


def test_agents_wechat_no_longer_lists_are_soft_deleted_and_come_back(emulator, kf_account_row):
    alice = emulator.bound_agent("alice")
    bob = emulator.bound_agent("bob")
    agents_sync(account_id=kf_account_row.pk)
    online_sync(account_id=kf_account_row.pk)
    bob_pk = agent(bob).pk

    wechat_client_for(kf_account_row).delete_account(bob)
    result = agents_sync(account_id=kf_account_row.pk)
    assert (result.listed, result.deleted) == (1, 1)
    gone = agent(bob)
    assert gone.deleted_at is not None
    assert (gone.online_status, gone.accepted_case) == (0, 0)
    assert agent(alice).deleted_at is None

    # A second run does not move the deletion time.
    agents_sync(account_id=kf_account_row.pk)
    assert agent(bob).deleted_at == gone.deleted_at

    emulator.bound_agent("bob", nickname="Bob again")
    result = agents_sync(account_id=kf_account_row.pk)
    assert (result.created, result.undeleted) == (0, 1)
    back = agent(bob)
    assert back.pk == bob_pk
    assert back.deleted_at is None and back.kf_nick == "Bob again"


def test_agents_sync_fills_in_a_bare_row_a_callback_created(emulator, kf_account_row):
    alice = emulator.bound_agent("alice", nickname="阿华")
    bare = Agent.objects.create(official_account=kf_account_row, kf_account=alice)
    agents_sync(account_id=kf_account_row.pk)
    row = agent(alice)
    assert row.pk == bare.pk and row.kf_nick == "阿华" and row.kf_wx


def test_agents_of_another_account_are_left_alone(emulator, kf_account_row):
    emulator.bound_agent("alice")
    stranger = AgentFactory(kf_account="zed@elsewhere")
    agents_sync(account_id=kf_account_row.pk)
    stranger.refresh_from_db()
    assert stranger.deleted_at is None


def test_a_wechat_error_is_recorded_as_a_sentence_and_changes_nothing(emulator, kf_account_row):
    emulator.bound_agent("alice")
    existing = AgentFactory(official_account=kf_account_row, kf_account="old@test_oa")
    emulator.control("add_fault", kind="errcode", errcode=65400, next=1, path_prefix="/cgi-bin/customservice/getkflist")
    with pytest.raises(WeChatForbidden):
        agents_sync(account_id=kf_account_row.pk)
    assert list(Agent.objects.values_list("kf_account", "deleted_at")) == [(existing.kf_account, None)]
    state = SyncState.objects.get(official_account=kf_account_row, job="agents")
    assert state.last_error.startswith("The new customer-service feature is not enabled")
    assert state.last_success_at is None and state.last_error_at is not None


# --------------------------------------------------------------------------- online


def test_online_sync_sets_status_and_accepted_sessions(emulator, kf_account_row):
    alice = emulator.bound_agent("alice")
    bob = emulator.bound_agent("bob", online=False)
    carol = emulator.bound_agent("carol")
    for _ in range(2):
        emulator.customer()
        emulator.control("agent_accept", kf_account=alice)
    agents_sync(account_id=kf_account_row.pk)
    before = timezone.now()

    result = online_sync(account_id=kf_account_row.pk)

    assert (result.online, result.changed) == (2, 2)
    assert (agent(alice).online_status, agent(alice).accepted_case) == (1, 2)
    assert (agent(carol).online_status, agent(carol).accepted_case) == (1, 0)
    assert (agent(bob).online_status, agent(bob).accepted_case) == (0, 0)
    assert agent(alice).last_online_at >= before
    assert agent(bob).last_online_at is None
    assert SyncState.objects.get(official_account=kf_account_row, job="online").last_success_at >= before


def test_presence_rows_are_written_only_on_change(emulator, kf_account_row):
    alice = emulator.bound_agent("alice")
    bob = emulator.bound_agent("bob")
    emulator.bound_agent("carol", online=False)
    agents_sync(account_id=kf_account_row.pk)

    online_sync(account_id=kf_account_row.pk)
    assert sorted(AgentPresence.objects.values_list("agent__kf_account", "online_status", "accepted_case")) == [
        (alice, 1, 0), (bob, 1, 0),
    ]
    assert online_sync(account_id=kf_account_row.pk).changed == 0
    assert AgentPresence.objects.count() == 2

    emulator.control("agent_online", kf_account=bob, online=False)
    emulator.customer()
    emulator.control("agent_accept", kf_account=alice)
    online_sync(account_id=kf_account_row.pk)
    latest = AgentPresence.objects.order_by("-id")[:2]
    assert sorted((p.agent.kf_account, p.online_status, p.accepted_case) for p in latest) == [(alice, 1, 1), (bob, 0, 0)]
    assert AgentPresence.objects.count() == 4


def test_agents_missing_from_the_online_list_go_offline(emulator, kf_account_row):
    SyncStateFactory(official_account=kf_account_row, job="agents")
    AgentFactory(official_account=kf_account_row, kf_account="ghost@test_oa", online_status=1, accepted_case=3)
    online_sync(account_id=kf_account_row.pk)
    ghost = agent("ghost@test_oa")
    assert (ghost.online_status, ghost.accepted_case) == (0, 0)
    assert AgentPresence.objects.get().online_status == 0


def test_online_agents_not_synced_yet_are_skipped(emulator, kf_account_row):
    agents_sync(account_id=kf_account_row.pk)
    emulator.bound_agent("fresh")
    result = online_sync(account_id=kf_account_row.pk)
    assert result.unknown == 1
    assert not Agent.objects.exists()


def test_online_sync_lists_the_agents_first_on_a_fresh_install(emulator, kf_account_row):
    alice = emulator.bound_agent("alice")
    result = online_sync(account_id=kf_account_row.pk)
    assert (result.online, result.unknown) == (1, 0)
    assert agent(alice).online_status == 1
    assert SyncState.objects.get(official_account=kf_account_row, job="agents").last_success_at is not None
