"""Agent, user and sync services, against the emulator over real HTTP."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.utils import translation
from PIL import Image

from accounts import services
from accounts.models import Agent, AuditEvent, Membership
from accounts.services import RoleChoice, ServiceError
from tests.factories import (
    AgentFactory,
    OfficialAccountFactory,
    agent_user,
    auditor,
    supervisor,
)

pytestmark = pytest.mark.django_db

User = get_user_model()


def jpeg(width: int = 640, height: int = 640) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (7, 193, 96)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


@pytest.fixture
def account(kf_account_row):
    return kf_account_row


def fail_next(emulator, path: str, errcode: int) -> None:
    emulator.state.add_fault(kind="errcode", errcode=errcode, path_prefix=path, next=1)


def last_event() -> AuditEvent:
    return AuditEvent.objects.order_by("-id").first()


# --------------------------------------------------------------------------- add


def test_agent_create_adds_the_account_at_wechat_and_here(account, boss, emulator):
    agent = services.agent_create(account=account, actor=boss, prefix="alice", nickname="小爱")

    assert agent.kf_account == f"alice@{emulator.wechat_id}"
    assert agent.kf_nick == "小爱"
    listed = {a["kf_account"]: a for a in emulator.get("/cgi-bin/customservice/getkflist")["kf_list"]}
    assert listed[agent.kf_account]["kf_nick"] == "小爱"
    # The refresh after the write already brought WeChat's kf id.
    assert agent.kf_id == listed[agent.kf_account]["kf_id"]
    event = last_event()
    assert (event.action, event.result, event.target, event.actor) == ("agent_add", "ok", agent.kf_account, boss)


def test_agent_create_sends_the_full_account_with_the_official_accounts_wechat_id(account, boss, emulator):
    services.agent_create(account=account, actor=boss, prefix="bob_2", nickname="Bob")

    add = [c for c in emulator.calls if c.path == "/customservice/kfaccount/add"][-1]
    assert add.json == {"kf_account": f"bob_2@{emulator.wechat_id}", "nickname": "Bob"}


def test_agent_create_brings_back_a_deleted_agent_of_the_same_name(account, boss, emulator):
    old = AgentFactory(official_account=account, kf_account=f"carol@{emulator.wechat_id}", kf_nick="旧")
    Agent.objects.filter(pk=old.pk).update(deleted_at="2024-01-01T00:00:00Z")

    agent = services.agent_create(account=account, actor=boss, prefix="carol", nickname="新")

    assert agent.pk == old.pk
    assert agent.deleted_at is None
    assert agent.kf_nick == "新"


@pytest.mark.parametrize(
    ("errcode", "words"),
    [
        (65406, "already exists"),
        (65405, "maximum number of kf accounts"),
        (65403, "nickname"),
        (65400, "not enabled"),
    ],
)
def test_agent_create_refused_by_wechat_saves_nothing_and_explains(account, boss, emulator, errcode, words):
    fail_next(emulator, "/customservice/kfaccount/add", errcode)

    with pytest.raises(ServiceError) as raised:
        services.agent_create(account=account, actor=boss, prefix="dave", nickname="Dave")

    assert raised.value.errcode == errcode
    assert words in raised.value.message
    assert f"WeChat error {errcode}" in raised.value.message
    assert not Agent.objects.filter(official_account=account).exists()
    event = last_event()
    assert (event.action, event.result, event.errcode) == ("agent_add", "error", errcode)


def test_agent_create_for_a_duplicate_at_wechat_explains_it(account, boss, emulator):
    emulator.bound_agent("erin")

    with pytest.raises(ServiceError) as raised:
        services.agent_create(account=account, actor=boss, prefix="erin", nickname="Erin")

    assert raised.value.errcode == 65406
    assert not Agent.objects.filter(kf_account__startswith="erin@").exists()


def test_agent_create_when_wechat_is_unreachable_says_so_and_saves_nothing(account, boss, emulator):
    emulator.state.add_fault(kind="drop", path_prefix="/customservice/kfaccount/add", next=1)

    with pytest.raises(ServiceError) as raised:
        services.agent_create(account=account, actor=boss, prefix="frank", nickname="Frank")

    assert raised.value.errcode is None
    assert raised.value.message == "WeChat could not be reached (connection failed); try again in a minute."
    assert not Agent.objects.exists()
    assert last_event().result == "error"


def test_agent_create_without_the_official_accounts_wechat_id_calls_nothing(boss, emulator):
    account = OfficialAccountFactory(wechat_id="", api_base_url=emulator.base_url)

    with pytest.raises(ServiceError, match="WeChat ID"):
        services.agent_create(account=account, actor=boss, prefix="gina", nickname="Gina")

    assert emulator.calls == []


def test_a_refusal_reads_in_chinese_for_a_chinese_user(account, boss, emulator):
    fail_next(emulator, "/customservice/kfaccount/add", 65406)

    with translation.override("zh-hans"), pytest.raises(ServiceError) as raised:
        services.agent_create(account=account, actor=boss, prefix="hana", nickname="Hana")

    assert "已存在" in raised.value.message
    assert "65406" in raised.value.message


# --------------------------------------------------------------------------- update


def test_agent_update_renames_at_wechat_and_here(account, boss, emulator):
    kf = emulator.bound_agent("ivy", nickname="Ivy")
    agent = AgentFactory(official_account=account, kf_account=kf, kf_nick="Ivy")

    services.agent_update(agent=agent, actor=boss, nickname="艾薇")

    agent.refresh_from_db()
    assert agent.kf_nick == "艾薇"
    listed = {a["kf_account"]: a for a in emulator.get("/cgi-bin/customservice/getkflist")["kf_list"]}
    assert listed[kf]["kf_nick"] == "艾薇"
    assert last_event().params == {"nickname": "艾薇", "previous": "Ivy"}


@pytest.mark.parametrize(("errcode", "words"), [(65403, "nickname"), (65401, "does not exist"), (-1, "busy")])
def test_agent_update_refused_keeps_the_old_nickname(account, boss, emulator, errcode, words):
    kf = emulator.bound_agent("jack", nickname="Jack")
    agent = AgentFactory(official_account=account, kf_account=kf, kf_nick="Jack")
    fail_next(emulator, "/customservice/kfaccount/update", errcode)

    with pytest.raises(ServiceError) as raised:
        services.agent_update(agent=agent, actor=boss, nickname="Jacky")

    assert words in raised.value.message
    agent.refresh_from_db()
    assert agent.kf_nick == "Jack"
    assert last_event().errcode == errcode


# --------------------------------------------------------------------------- delete


def test_agent_delete_deletes_at_wechat_and_marks_it_deleted_here(account, boss, emulator):
    kf = emulator.bound_agent("kate")
    agent = AgentFactory(official_account=account, kf_account=kf, online_status=1, accepted_case=2)

    services.agent_delete(agent=agent, actor=boss)

    agent.refresh_from_db()
    assert agent.deleted_at is not None
    assert (agent.online_status, agent.accepted_case) == (0, 0)
    listed = [a["kf_account"] for a in emulator.get("/cgi-bin/customservice/getkflist")["kf_list"]]
    assert kf not in listed
    assert (last_event().action, last_event().result) == ("agent_delete", "ok")


def test_agent_delete_refused_keeps_the_agent(account, boss, emulator):
    kf = emulator.bound_agent("leo")
    agent = AgentFactory(official_account=account, kf_account=kf)
    fail_next(emulator, "/customservice/kfaccount/del", 45009)

    with pytest.raises(ServiceError, match="daily call quota"):
        services.agent_delete(agent=agent, actor=boss)

    agent.refresh_from_db()
    assert agent.deleted_at is None
    assert (last_event().result, last_event().errcode) == ("error", 45009)


def test_agent_delete_of_an_account_wechat_no_longer_has_removes_it_here(account, boss, emulator):
    agent = AgentFactory(official_account=account, kf_account=f"gone@{emulator.wechat_id}")

    services.agent_delete(agent=agent, actor=boss)

    agent.refresh_from_db()
    assert agent.deleted_at is not None
    assert "no longer had" in last_event().message


# --------------------------------------------------------------------------- avatar


def test_agent_avatar_upload_sends_the_jpeg_and_picks_up_the_new_url(account, boss, emulator):
    kf = emulator.bound_agent("mia")
    agent = AgentFactory(official_account=account, kf_account=kf, kf_headimgurl="")
    content = jpeg(300, 200)

    agent = services.agent_avatar_upload(agent=agent, actor=boss, content=content, width=300, height=200)

    upload = [c for c in emulator.calls if c.path == "/customservice/kfaccount/uploadheadimg"][-1]
    assert upload.query["kf_account"] == kf
    assert content in upload.body
    assert agent.kf_headimgurl.startswith(emulator.base_url)
    assert last_event().params == {"bytes": len(content), "width": 300, "height": 200}


@pytest.mark.parametrize(("errcode", "words"), [(40005, "JPG"), (40009, "5 MB")])
def test_agent_avatar_refused_by_wechat_explains_and_changes_nothing(account, boss, emulator, errcode, words):
    kf = emulator.bound_agent("nina")
    agent = AgentFactory(official_account=account, kf_account=kf, kf_headimgurl="http://example.com/old.jpg")
    fail_next(emulator, "/customservice/kfaccount/uploadheadimg", errcode)

    with pytest.raises(ServiceError) as raised:
        services.agent_avatar_upload(agent=agent, actor=boss, content=jpeg(), width=640, height=640)

    assert words in raised.value.message
    agent.refresh_from_db()
    assert agent.kf_headimgurl == "http://example.com/old.jpg"
    assert last_event().errcode == errcode


# --------------------------------------------------------------------------- invite


def unbound(account, emulator, prefix: str) -> Agent:
    services.agent_create(account=account, actor=None, prefix=prefix, nickname=prefix)
    return Agent.objects.get(kf_account=f"{prefix}@{emulator.wechat_id}")


def test_agent_invite_sends_the_invitation_and_shows_it_pending_with_wechats_expiry(account, boss, emulator):
    agent = unbound(account, emulator, "olga")

    agent = services.agent_invite(agent=agent, actor=boss, invite_wx="olga_wx01")

    invite = [c for c in emulator.calls if c.path == "/customservice/kfaccount/inviteworker"][-1]
    assert invite.json == {"kf_account": agent.kf_account, "invite_wx": "olga_wx01"}
    assert (agent.invite_wx, agent.invite_status) == ("olga_wx01", "waiting")
    assert agent.invite_expire_time is not None
    assert last_event().params == {"invite_wx": "olga_wx01"}


def test_agent_invite_shows_it_pending_even_when_the_refresh_fails(account, boss, emulator):
    agent = unbound(account, emulator, "pam")
    emulator.state.add_fault(kind="errcode", errcode=-1, path_prefix="/cgi-bin/customservice/getkflist", next=1)

    agent = services.agent_invite(agent=agent, actor=boss, invite_wx="pam_wx001")

    assert (agent.invite_wx, agent.invite_status, agent.invite_expire_time) == ("pam_wx001", "waiting", None)


@pytest.mark.parametrize(
    ("errcode", "words"),
    [
        (65407, "already an agent"),
        (65408, "already been invited"),
        (65409, "does not know this WeChat ID"),
        (65410, "too many kf accounts"),
        (65411, "pending invitation"),
        (65412, "already bound"),
    ],
)
def test_agent_invite_refused_by_wechat_explains_and_records_nothing_as_pending(
    account, boss, emulator, errcode, words
):
    agent = unbound(account, emulator, "quinn")
    fail_next(emulator, "/customservice/kfaccount/inviteworker", errcode)

    with pytest.raises(ServiceError) as raised:
        services.agent_invite(agent=agent, actor=boss, invite_wx="quinn_wx1")

    assert words in raised.value.message
    agent.refresh_from_db()
    assert (agent.invite_wx, agent.invite_status) == ("", "")
    assert (last_event().action, last_event().errcode) == ("agent_invite", errcode)


def test_agent_invite_of_an_unknown_wechat_id_is_refused_by_wechat(account, boss, emulator):
    agent = unbound(account, emulator, "rita")

    with pytest.raises(ServiceError) as raised:
        # The form refuses this shape first; called directly, WeChat is the judge.
        services.agent_invite(agent=agent, actor=boss, invite_wx="9bad")

    assert raised.value.errcode == 65409


def test_agent_invite_again_after_the_invitation_expired(account, boss, emulator):
    agent = unbound(account, emulator, "sam")
    services.agent_invite(agent=agent, actor=boss, invite_wx="sam_wx001")
    emulator.state.invite_respond(kf_account=agent.kf_account, action="expire")
    from accounts.sync import agents_sync

    agents_sync(account_id=account.pk)
    agent.refresh_from_db()
    assert agent.invite_status == "expired"

    agent = services.agent_invite(agent=agent, actor=boss, invite_wx="sam_wx002")

    assert (agent.invite_wx, agent.invite_status) == ("sam_wx002", "waiting")


def test_agent_invite_while_one_is_pending_is_refused_before_calling_wechat(account, boss, emulator):
    agent = unbound(account, emulator, "tom")
    services.agent_invite(agent=agent, actor=boss, invite_wx="tom_wx001")
    calls = len(emulator.calls)

    with pytest.raises(ServiceError, match="pending invitation"):
        services.agent_invite(agent=agent, actor=boss, invite_wx="tom_wx002")

    assert len(emulator.calls) == calls


def test_agent_invite_of_a_bound_agent_is_refused_before_calling_wechat(account, boss, emulator):
    agent = AgentFactory(official_account=account, kf_account=emulator.bound_agent("uma"), kf_wx="uma_wx")

    with pytest.raises(ServiceError, match="already bound"):
        services.agent_invite(agent=agent, actor=boss, invite_wx="someone1")

    assert emulator.calls == []


# --------------------------------------------------------------------------- users


def test_user_create_makes_a_login_with_the_roles_given():
    account, other = OfficialAccountFactory(), OfficialAccountFactory()
    boss = supervisor(account)
    agent = AgentFactory(official_account=account)

    user = services.user_create(
        actor=boss,
        username="xiaoming",
        password="a long secret 42",
        roles=[RoleChoice(account=account, role="agent", agent=agent), RoleChoice(account=other, role="")],
    )

    assert user.check_password("a long secret 42")
    assert list(Membership.objects.filter(user=user).values_list("official_account", "role", "agent")) == [
        (account.pk, "agent", agent.pk)
    ]
    assert AuditEvent.objects.filter(action="user_create", official_account=account, target="xiaoming").exists()
    assert not AuditEvent.objects.filter(official_account=other).exists()


def test_user_create_without_any_role_is_refused():
    account = OfficialAccountFactory()

    with pytest.raises(ServiceError):
        services.user_create(
            actor=supervisor(account), username="nobody", password="x", roles=[RoleChoice(account=account, role="")]
        )

    assert not User.objects.filter(username="nobody").exists()


def test_user_roles_set_changes_adds_and_removes_roles():
    a, b, c = OfficialAccountFactory(), OfficialAccountFactory(), OfficialAccountFactory()
    boss = supervisor(a)
    person = auditor(a, username="li")
    Membership.objects.create(user=person, official_account=b, role="supervisor")

    services.user_roles_set(
        actor=boss,
        user=person,
        roles=[RoleChoice(account=a, role="supervisor"), RoleChoice(account=b, role=""), RoleChoice(account=c, role="auditor")],
    )

    assert dict(Membership.objects.filter(user=person).values_list("official_account", "role")) == {
        a.pk: "supervisor",
        c.pk: "auditor",
    }
    assert AuditEvent.objects.filter(action="user_role").count() == 3


def test_user_roles_set_refuses_an_agent_of_another_account():
    a, b = OfficialAccountFactory(), OfficialAccountFactory()
    person = auditor(a, username="wang")

    with pytest.raises(ServiceError):
        services.user_roles_set(
            actor=supervisor(a), user=person, roles=[RoleChoice(account=a, role="agent", agent=AgentFactory(official_account=b))]
        )

    assert Membership.objects.get(user=person).role == "auditor"


def test_nobody_changes_their_own_roles():
    account = OfficialAccountFactory()
    boss = supervisor(account)

    with pytest.raises(ServiceError):
        services.user_roles_set(actor=boss, user=boss, roles=[RoleChoice(account=account, role="")])

    assert Membership.objects.filter(user=boss).exists()


def test_user_active_set_deactivates_logs_out_and_audits_on_each_account(client):
    account = OfficialAccountFactory()
    boss = supervisor(account)
    person = agent_user(account)
    client.force_login(person)

    services.user_active_set(actor=boss, user=person, active=False)

    person.refresh_from_db()
    assert not person.is_active
    assert client.get("/").status_code == 302
    assert AuditEvent.objects.get(action="user_deactivate").official_account == account


def test_nobody_deactivates_themselves():
    boss = supervisor(OfficialAccountFactory())

    with pytest.raises(ServiceError):
        services.user_active_set(actor=boss, user=boss, active=False)

    boss.refresh_from_db()
    assert boss.is_active


def test_user_password_set_sets_it_and_audits():
    account = OfficialAccountFactory()
    person = auditor(account)

    services.user_password_set(actor=supervisor(account), user=person, password="new pass 9081")

    person.refresh_from_db()
    assert person.check_password("new pass 9081")
    assert AuditEvent.objects.filter(action="user_password", target=person.username).exists()


# --------------------------------------------------------------------------- sync


def test_sync_run_queues_the_jobs_task_after_commit(monkeypatch, django_capture_on_commit_callbacks):
    from accounts import tasks

    queued = []
    monkeypatch.setattr(tasks.sync_agents_task, "delay", lambda account_id: queued.append(account_id))
    account = OfficialAccountFactory()
    boss = supervisor(account)

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.sync_run(account=account, actor=boss, job="agents")
    assert queued == []
    for callback in callbacks:
        callback()

    assert queued == [account.pk]
    assert AuditEvent.objects.get(action="sync_run").target == "agents"


def test_sync_run_refuses_a_job_without_a_task():
    account = OfficialAccountFactory()

    with pytest.raises(ServiceError):
        services.sync_run(account=account, actor=supervisor(account), job="backfill")


def test_every_sync_now_button_names_a_real_task():
    from django.utils.module_loading import import_string

    for path in services.SYNC_TASKS.values():
        assert callable(import_string(path).delay), path
