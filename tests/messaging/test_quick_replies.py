"""Quick replies: the model, services, selectors, forms, the management page and the
composer's picker."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from messaging.forms import TEXT_MAX_BYTES, QuickReplyForm
from messaging.models import QuickReply, QuickReplyUse
from messaging.selectors import quick_replies_list, quick_replies_pick, quick_reply_get
from messaging.services import (
    quick_reply_create,
    quick_reply_delete,
    quick_reply_update,
    quick_reply_use,
)
from messaging.views_quick_replies import PAGE_SIZE
from tests.factories import (
    OfficialAccountFactory,
    agent_user,
    auditor,
    outsider,
    sent_to_login,
    supervisor,
)
from tests.sessions_app.test_views_support import htmx

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]

LIST = reverse("messaging:quick_replies")
ADD = reverse("messaging:quick_reply_add")
PICK = reverse("messaging:quick_reply_pick")


def edit_url(reply):
    return reverse("messaging:quick_reply_edit", args=[reply.pk])


def delete_url(reply):
    return reverse("messaging:quick_reply_delete", args=[reply.pk])


def used_url(reply):
    return reverse("messaging:quick_reply_used", args=[reply.pk])


@pytest.fixture
def account():
    return OfficialAccountFactory()


@pytest.fixture
def boss(account):
    return supervisor(account)


@pytest.fixture
def agent(account):
    return agent_user(account)


@pytest.fixture
def shared(account, boss):
    return quick_reply_create(account=account, owner=None, title="发货", text="您的包裹已发出，单号稍后发您。", actor=boss)


@pytest.fixture
def mine(account, agent):
    return quick_reply_create(account=account, owner=agent, title="问候", text="您好，我是小王。", actor=agent)


# ------------------------------------------------------------------ services and selectors


def test_a_reply_is_a_text_message_payload_and_its_creation_is_audited(account, boss, shared):
    assert (shared.msgtype, shared.payload, shared.text, shared.is_shared) == (
        "text", {"content": "您的包裹已发出，单号稍后发您。"}, "您的包裹已发出，单号稍后发您。", True
    )
    event = AuditEvent.objects.get(action="quick_reply_create")
    assert (event.actor, event.official_account, event.target, event.params) == (
        boss, account, "发货", {"reply": shared.pk, "shared": True, "msgtype": "text"}
    )


def test_updating_and_deleting_are_audited(boss, shared):
    quick_reply_update(reply=shared, title="发货通知", text="已发货", actor=boss)
    shared.refresh_from_db()
    assert (shared.title, shared.text) == ("发货通知", "已发货")
    pk = shared.pk
    quick_reply_delete(reply=shared, actor=boss)
    assert not QuickReply.objects.filter(pk=pk).exists()
    assert list(AuditEvent.objects.filter(action__startswith="quick_reply").values_list("action", flat=True).order_by("id")) == [
        "quick_reply_create", "quick_reply_update", "quick_reply_delete"
    ]


def test_each_person_sees_the_shared_replies_and_only_their_own(account, boss, agent, shared, mine):
    other = agent_user(account, username="other")
    quick_reply_create(account=OfficialAccountFactory(), owner=None, title="别家", text="x", actor=None)

    assert {r.title for r in quick_replies_pick(account=account, user=agent)} == {"发货", "问候"}
    assert {r.title for r in quick_replies_pick(account=account, user=other)} == {"发货"}
    assert quick_reply_get(account=account, user=other, reply_id=mine.pk) is None


def test_the_picker_lists_a_persons_most_used_replies_first(account, agent, shared, mine, boss):
    third = quick_reply_create(account=account, owner=None, title="退款", text="退款三天内到账。", actor=boss)
    for _ in range(3):
        quick_reply_use(reply=third, user=agent)
    assert quick_reply_use(reply=mine, user=agent) == 1
    quick_reply_use(reply=shared, user=boss)  # another person's picks do not count for this one

    picked = quick_replies_pick(account=account, user=agent)

    assert [(r.title, r.use_count) for r in picked] == [("退款", 3), ("问候", 1), ("发货", 0)]
    assert QuickReplyUse.objects.get(reply=third, user=agent).count == 3


def test_the_picker_searches_titles_and_texts(account, agent, shared, mine):
    assert [r.title for r in quick_replies_pick(account=account, user=agent, q="包裹")] == ["发货"]
    assert [r.title for r in quick_replies_pick(account=account, user=agent, q="问")] == ["问候"]
    assert quick_replies_pick(account=account, user=agent, q="nothing like it") == []


def test_the_management_list_shows_shared_first_and_filters_by_scope(account, agent, shared, mine):
    assert [r.title for r in quick_replies_list(account=account, user=agent)] == ["发货", "问候"]
    assert [r.title for r in quick_replies_list(account=account, user=agent, scope="mine")] == ["问候"]
    assert [r.title for r in quick_replies_list(account=account, user=agent, scope="shared")] == ["发货"]


# ------------------------------------------------------------------ forms


def test_the_text_may_be_as_long_as_wechat_sends_and_no_longer(account):
    longest = "好" * (TEXT_MAX_BYTES // 3)  # 3 bytes each in UTF-8
    assert QuickReplyForm({"title": "长", "text": longest}, can_share=False, account=account).is_valid()
    form = QuickReplyForm({"title": "长", "text": longest + "好"}, can_share=False, account=account)
    assert not form.is_valid()
    assert "2049 bytes; WeChat sends at most 2048 bytes" in str(form.errors["text"])


def test_only_supervisors_get_the_shared_box_and_blank_texts_are_refused(account):
    assert "shared" not in QuickReplyForm(can_share=False, account=account).fields
    assert "shared" in QuickReplyForm(can_share=True, account=account).fields
    form = QuickReplyForm({"title": "  ", "text": "  \n"}, can_share=False, account=account)
    assert not form.is_valid() and set(form.errors) == {"title", "text"}


# ------------------------------------------------------------------ the management page


def test_the_page_lists_the_replies_with_their_scope(client, agent, shared, mine):
    client.force_login(agent)
    body = client.get(LIST).content.decode()
    assert "发货" in body and "问候" in body
    assert edit_url(mine) in body
    assert edit_url(shared) not in body  # shared replies are the supervisors' to change


def test_an_empty_list_says_how_to_start(client, agent):
    client.force_login(agent)
    body = client.get(LIST).content.decode()
    assert "No quick replies yet." in body and ADD in body


def test_a_search_matches_and_says_so_when_nothing_does(client, agent, shared, mine):
    client.force_login(agent)
    assert "问候" not in client.get(LIST, {"q": "包裹"}).content.decode().split("quick-reply-list")[1]
    assert "No quick reply matches." in client.get(LIST, {"q": "zzz"}).content.decode()


def test_the_list_is_paginated(client, account, agent):
    for i in range(PAGE_SIZE + 3):
        QuickReply.objects.create(official_account=account, owner=agent, title=f"r{i:03d}", payload={"content": "x"})
    client.force_login(agent)
    first = client.get(LIST).content.decode()
    second = client.get(LIST, {"page": 2}).content.decode()
    assert "Page 1 of 2" in first and "r000" in first and "r027" not in first
    assert "Page 2 of 2" in second and "r027" in second


def test_an_htmx_search_gets_only_the_list(client, agent, shared):
    client.force_login(agent)
    response = client.get(LIST, {"q": "发货"}, **htmx("quick-reply-list"))
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="quick-reply-list"')
    assert "<html" not in body and "发货" in body


def test_the_page_needs_a_login(client):
    assert sent_to_login(client.get(LIST))
    assert sent_to_login(client.get(LIST, **htmx("quick-reply-list")), htmx=True)


def test_auditors_have_no_quick_replies(client, account):
    client.force_login(auditor(account))
    assert client.get(LIST).status_code == 403
    assert client.get(PICK).status_code == 403
    assert client.post(ADD, {"title": "x", "text": "y"}).status_code == 403
    assert not QuickReply.objects.exists()


def test_the_list_takes_no_post(client, agent):
    client.force_login(agent)
    assert client.post(LIST).status_code == 405


def test_a_supervisor_adds_a_shared_reply(client, account, boss):
    client.force_login(boss)
    response = client.post(ADD, {"title": "营业时间", "text": "我们 9:00–18:00 在线。", "shared": "on"})
    assert response.status_code == 302 and response["Location"] == LIST
    reply = QuickReply.objects.get()
    assert (reply.official_account, reply.owner, reply.created_by, reply.text) == (account, None, boss, "我们 9:00–18:00 在线。")


def test_an_agent_adds_a_personal_reply_even_when_asking_to_share(client, agent):
    client.force_login(agent)
    client.post(ADD, {"title": "我的", "text": "您好", "shared": "on"})
    assert QuickReply.objects.get().owner == agent


def test_a_bad_reply_is_shown_again_with_the_reason_and_nothing_is_saved(client, agent):
    client.force_login(agent)
    response = client.post(ADD, {"title": "", "text": "好" * 700})
    assert response.status_code == 422
    assert "WeChat sends at most 2048 bytes" in response.content.decode()
    assert not QuickReply.objects.exists() and not AuditEvent.objects.filter(action="quick_reply_create").exists()


def test_an_agent_edits_their_own_but_not_a_shared_reply(client, agent, shared, mine):
    client.force_login(agent)
    assert client.post(edit_url(mine), {"title": "问候", "text": "您好！"}).status_code == 302
    mine.refresh_from_db()
    assert mine.text == "您好！"
    assert client.get(edit_url(shared)).status_code == 403
    assert client.post(edit_url(shared), {"title": "x", "text": "y"}).status_code == 403
    shared.refresh_from_db()
    assert shared.title == "发货"


def test_a_supervisor_cannot_see_an_agents_personal_reply(client, boss, mine):
    client.force_login(boss)
    assert client.get(edit_url(mine)).status_code == 404
    assert client.post(delete_url(mine)).status_code == 404


def test_another_accounts_supervisor_reaches_nothing(client, shared):
    client.force_login(outsider())
    assert client.get(edit_url(shared)).status_code == 404
    assert client.post(delete_url(shared)).status_code == 404
    assert client.post(used_url(shared)).status_code == 404
    assert "发货" not in client.get(PICK).content.decode()


def test_deleting_asks_first_then_deletes(client, boss, shared):
    client.force_login(boss)
    confirm = client.get(delete_url(shared))
    assert confirm.status_code == 200 and "Delete the quick reply “发货”?" in confirm.content.decode()
    assert QuickReply.objects.filter(pk=shared.pk).exists()
    assert client.post(delete_url(shared)).status_code == 302
    assert not QuickReply.objects.filter(pk=shared.pk).exists()
    assert AuditEvent.objects.filter(action="quick_reply_delete", actor=boss).exists()


# ------------------------------------------------------------------ the picker


def test_the_picker_answers_options_with_the_text_to_insert(client, agent, shared, mine):
    client.force_login(agent)
    response = client.get(PICK, {"q": "发"}, **htmx())
    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert 'role="option"' in body and 'data-text="您的包裹已发出，单号稍后发您。"' in body
    assert "问候" not in body


def test_the_picker_says_when_nothing_matches(client, agent):
    client.force_login(agent)
    assert "No quick replies yet." in client.get(PICK).content.decode()
    assert "No quick reply matches." in client.get(PICK, {"q": "x"}).content.decode()


def test_a_pick_is_counted_for_the_person(client, agent, shared):
    client.force_login(agent)
    assert client.post(used_url(shared), **htmx()).status_code == 204
    assert client.post(used_url(shared)).status_code == 204
    assert QuickReplyUse.objects.get(reply=shared, user=agent).count == 2
    assert client.get(used_url(shared)).status_code == 405


def test_the_picker_needs_a_login(client, shared):
    assert sent_to_login(client.get(PICK, **htmx()), htmx=True)
    assert sent_to_login(client.post(used_url(shared)))


def test_the_add_form_comes_as_a_fragment_for_htmx_and_a_page_otherwise(client, boss):
    client.force_login(boss)
    fragment = client.get(ADD, **htmx()).content.decode()
    page = client.get(ADD).content.decode()
    assert fragment.lstrip().startswith('<div id="quick-reply-form">') and "<html" not in fragment
    assert "<html" in page and "Shared with every agent of this official account" in page


def test_the_nav_links_the_page_for_those_who_send(client, account, boss):
    client.force_login(boss)
    assert LIST in client.get(reverse("home")).content.decode()
    client.force_login(auditor(account))
    assert LIST not in client.get(reverse("home")).content.decode()
