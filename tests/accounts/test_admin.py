"""The admin: every model is registered and viewable; secrets never show in clear."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from accounts.models import OfficialAccount
from messaging.models import QuickReply, QuickReplyUse
from sessions_app.models import AutoAssign, AutoAssignClaim, CustomerNote
from tests.factories import (
    AgentFactory,
    AgentPresenceFactory,
    AuditEventFactory,
    KfSessionFactory,
    MembershipFactory,
    MessageRecordFactory,
    OfficialAccountFactory,
    OutboundMessageFactory,
    SyncStateFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-AppSecret-0123456789abcdef"
CALLBACK_TOKEN = "callback-token-value-42"
AES_KEY = "jxAko083VoJ3lcPXJWzcGJ0M1tFVLgdD6qAq57GJY1U"
ACCESS_TOKEN = "ACCESS_TOKEN_visible_nowhere_0123456789"


@pytest.fixture
def staff(client):
    user = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(user)
    return client


@pytest.fixture
def account():
    return OfficialAccountFactory(
        secret=SECRET, callback_token=CALLBACK_TOKEN, encoding_aes_key=AES_KEY, access_token=ACCESS_TOKEN
    )


def test_every_model_of_the_three_apps_is_registered():
    models = [m for label in ("accounts", "sessions_app", "messaging") for m in apps.get_app_config(label).get_models()]
    assert models and all(admin.site.is_registered(model) for model in models)


def test_every_changelist_and_detail_page_renders(staff, account):
    agent = AgentFactory(official_account=account)
    objects = [
        account, agent, AgentPresenceFactory(agent=agent), MembershipFactory(official_account=account),
        SyncStateFactory(official_account=account), AuditEventFactory(official_account=account),
        KfSessionFactory(official_account=account, state="open", agent=agent),
        MessageRecordFactory(official_account=account), OutboundMessageFactory(official_account=account),
    ]
    objects.append(objects[6].customer)
    objects.append(AutoAssign.objects.create(official_account=account, state="on", changed_by="boss"))
    objects.append(AutoAssignClaim.objects.create(session=objects[6], agent=agent, until=timezone.now()))
    objects.append(CustomerNote.objects.create(customer=objects[6].customer, author_label="root", text="记一笔"))
    reply = QuickReply.objects.create(official_account=account, title="问候", payload={"content": "您好"})
    objects += [reply, QuickReplyUse.objects.create(reply=reply, user=UserFactory())]
    for obj in objects:
        opts = obj._meta
        changelist = staff.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
        assert changelist.status_code == 200, opts.label
        detail = staff.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))
        assert detail.status_code == 200, opts.label
        for secret in (SECRET, CALLBACK_TOKEN, AES_KEY, ACCESS_TOKEN):
            assert secret not in changelist.content.decode() + detail.content.decode(), opts.label


def test_the_account_page_shows_secrets_masked(staff, account):
    page = staff.get(reverse("admin:accounts_officialaccount_change", args=[account.pk])).content.decode()
    assert "••••••••cdef" in page  # the AppSecret's last characters only
    assert "••••••••6789" in page


def test_synced_rows_cannot_be_added_or_edited_by_hand(staff, account):
    agent = AgentFactory(official_account=account)
    assert staff.get(reverse("admin:accounts_agent_add")).status_code == 403
    response = staff.post(reverse("admin:accounts_agent_change", args=[agent.pk]), {"kf_nick": "hacked"})
    assert response.status_code == 403
    agent.refresh_from_db()
    assert agent.kf_nick != "hacked"


def form_data(account: OfficialAccount, **changes) -> dict:
    data = {
        "name": account.name, "appid": account.appid, "secret": "", "wechat_id": account.wechat_id,
        "original_id": account.original_id, "callback_token": "", "encoding_aes_key": "",
        "api_base_url": account.api_base_url, "token_endpoint": account.token_endpoint,
        "time_zone": account.time_zone, "agent_capacity": account.agent_capacity, "is_active": "on",
        "callback_mode": account.callback_mode, "alert_queue_wait_seconds": account.alert_queue_wait_seconds,
        "alert_unanswered_seconds": account.alert_unanswered_seconds,
    }
    data.update(changes)
    return data


def test_saving_with_blank_secrets_keeps_the_stored_ones(staff, account):
    response = staff.post(
        reverse("admin:accounts_officialaccount_change", args=[account.pk]), form_data(account, name="Renamed")
    )
    assert response.status_code == 302
    account.refresh_from_db()
    assert (account.name, account.secret, account.callback_token, account.encoding_aes_key) == (
        "Renamed", SECRET, CALLBACK_TOKEN, AES_KEY,
    )
    assert account.access_token == ACCESS_TOKEN


def test_a_new_app_secret_replaces_the_old_one_and_drops_the_token(staff, account):
    staff.post(
        reverse("admin:accounts_officialaccount_change", args=[account.pk]),
        form_data(account, secret="a-brand-new-secret-value"),
    )
    account.refresh_from_db()
    assert account.secret == "a-brand-new-secret-value"
    assert account.access_token == "" and account.access_token_expires_at is None


def test_adding_an_account_requires_the_app_secret(staff):
    template = OfficialAccountFactory.build()
    url = reverse("admin:accounts_officialaccount_add")
    response = staff.post(url, form_data(template))
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["secret"]
    assert not OfficialAccount.objects.filter(appid=template.appid).exists()
    assert staff.post(url, form_data(template, secret="the-secret")).status_code == 302
    assert OfficialAccount.objects.get(appid=template.appid).secret == "the-secret"


def test_a_malformed_aes_key_is_refused(staff, account):
    response = staff.post(
        reverse("admin:accounts_officialaccount_change", args=[account.pk]),
        form_data(account, encoding_aes_key="too-short"),
    )
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["encoding_aes_key"]
    account.refresh_from_db()
    assert account.encoding_aes_key == AES_KEY


@pytest.mark.parametrize("mode", ["plain", "compat", "safe"])
def test_the_callback_mode_is_set_in_the_admin(staff, account, mode):
    response = staff.post(
        reverse("admin:accounts_officialaccount_change", args=[account.pk]), form_data(account, callback_mode=mode)
    )
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.callback_mode == mode


def test_a_new_account_starts_in_safe_mode_and_needs_its_aes_key(staff):
    template = OfficialAccountFactory.build()
    url = reverse("admin:accounts_officialaccount_add")
    response = staff.get(url)
    assert response.context["adminform"].form["callback_mode"].value() == "safe"
    data = form_data(template, secret="the-secret", callback_mode="safe")
    response = staff.post(url, data)
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["encoding_aes_key"]
    assert staff.post(url, {**data, "encoding_aes_key": AES_KEY}).status_code == 302
    assert OfficialAccount.objects.get(appid=template.appid).callback_mode == "safe"
