"""Media quick replies: a library image, voice, video or published article of the
account, validated against the library, shown in the picker and the management list."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from messaging.forms import QuickReplyForm
from messaging.models import LibraryItem, QuickReply
from messaging.services import quick_reply_create, quick_reply_update
from tests.factories import OfficialAccountFactory, agent_user, supervisor
from tests.sessions_app.test_views_support import htmx

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]

LIST = reverse("messaging:quick_replies")
ADD = reverse("messaging:quick_reply_add")
PICK = reverse("messaging:quick_reply_pick")


@pytest.fixture
def account():
    return OfficialAccountFactory()


@pytest.fixture
def other():
    return OfficialAccountFactory()


@pytest.fixture
def boss(account):
    return supervisor(account)


@pytest.fixture
def agent(account):
    return agent_user(account)


@pytest.fixture
def library(account, other):
    return {
        "map": LibraryItem.objects.create(
            official_account=account, kind="image", ident="img_map", title="门店地图", url="https://mmbiz.example/map.png"
        ),
        "voice": LibraryItem.objects.create(official_account=account, kind="voice", ident="voice_hi", title="欢迎语音"),
        "article": LibraryItem.objects.create(official_account=account, kind="article", ident="art_refund", title="如何申请退换货"),
        "foreign": LibraryItem.objects.create(official_account=other, kind="image", ident="img_other", title="别家的图"),
    }


# ------------------------------------------------------------------ services


def test_a_library_image_reply_holds_the_media_id_and_is_audited(account, boss, library):
    reply = quick_reply_create(account=account, owner=None, title="地图", msgtype="image", library_ident="img_map", actor=boss)
    reply.refresh_from_db()
    assert (reply.msgtype, reply.payload, reply.library_ident, reply.text) == ("image", {"media_id": "img_map"}, "img_map", "")
    assert AuditEvent.objects.get(action="quick_reply_create").params["msgtype"] == "image"


def test_a_published_article_reply_holds_the_article_id(account, boss, library):
    reply = quick_reply_create(account=account, owner=boss, title="退货", msgtype="mpnewsarticle", library_ident="art_refund", actor=boss)
    assert reply.payload == {"article_id": "art_refund"}


def test_the_service_refuses_an_item_of_another_account_or_of_another_kind(account, boss, library):
    for msgtype, ident in (("image", "img_other"), ("image", "voice_hi"), ("image", "nope"), ("news", "x")):
        with pytest.raises(ValueError):
            quick_reply_create(account=account, owner=None, title="x", msgtype=msgtype, library_ident=ident, actor=boss)
    assert not QuickReply.objects.exists() and not AuditEvent.objects.exists()


def test_a_text_reply_becomes_a_voice_reply_and_back(account, boss, library):
    reply = quick_reply_create(account=account, owner=None, title="欢迎", text="您好", actor=boss)
    quick_reply_update(reply=reply, title="欢迎", msgtype="voice", library_ident="voice_hi", actor=boss)
    reply.refresh_from_db()
    assert (reply.msgtype, reply.payload) == ("voice", {"media_id": "voice_hi"})
    quick_reply_update(reply=reply, title="欢迎", text="您好！", actor=boss)
    reply.refresh_from_db()
    assert (reply.msgtype, reply.payload) == ("text", {"content": "您好！"})


# ------------------------------------------------------------------ the form


def test_the_form_offers_this_accounts_library_by_kind(account, library):
    form = QuickReplyForm(can_share=True, account=account)
    html = str(form["library"])
    assert 'value="image:img_map"' in html and 'value="mpnewsarticle:art_refund"' in html
    assert "img_other" not in html


@pytest.mark.parametrize(
    ("msgtype", "picked", "message"),
    [
        ("image", "image:img_other", "not in this account's library"),
        ("image", "image:img_gone", "not in this account's library"),
        ("image", "voice:voice_hi", "Pick an item of the kind chosen above."),
        ("video", "", "Pick the library item this reply sends."),
    ],
)
def test_the_form_refuses_an_item_it_does_not_list(account, library, msgtype, picked, message):
    form = QuickReplyForm({"title": "x", "msgtype": msgtype, "library": picked}, can_share=False, account=account)
    assert not form.is_valid()
    assert message in " ".join(form.errors["library"])


def test_a_media_reply_needs_no_text_and_a_text_reply_still_does(account, library):
    form = QuickReplyForm({"title": "地图", "msgtype": "image", "library": "image:img_map"}, can_share=False, account=account)
    assert form.is_valid(), form.errors
    assert (form.cleaned_data["library_ident"], form.cleaned_data["text"]) == ("img_map", "")
    form = QuickReplyForm({"title": "x", "msgtype": "text", "library": "image:img_map"}, can_share=False, account=account)
    assert not form.is_valid() and set(form.errors) == {"text"}


# ------------------------------------------------------------------ views


def test_a_supervisor_adds_a_shared_image_reply(client, account, boss, library):
    client.force_login(boss)
    response = client.post(ADD, {"title": "地图", "msgtype": "image", "library": "image:img_map", "shared": "on"})
    assert response.status_code == 302
    reply = QuickReply.objects.get()
    assert (reply.owner, reply.msgtype, reply.payload) == (None, "image", {"media_id": "img_map"})


def test_another_accounts_item_or_an_unknown_one_is_shown_again_and_nothing_saved(client, agent, library):
    client.force_login(agent)
    for picked in ("image:img_other", "image:missing"):
        response = client.post(ADD, {"title": "地图", "msgtype": "image", "library": picked})
        assert response.status_code == 422
        assert "not in this account&#x27;s library" in response.content.decode()
    assert not QuickReply.objects.exists() and not AuditEvent.objects.filter(action="quick_reply_create").exists()


def test_the_edit_form_shows_the_picked_item(client, account, agent, library):
    reply = quick_reply_create(account=account, owner=agent, title="语音", msgtype="voice", library_ident="voice_hi", actor=agent)
    client.force_login(agent)
    body = client.get(reverse("messaging:quick_reply_edit", args=[reply.pk])).content.decode()
    assert '<option value="voice:voice_hi" selected>欢迎语音</option>' in body
    assert '<option value="voice" selected>Voice</option>' in body


def test_the_list_and_the_picker_say_what_a_media_reply_sends(client, account, agent, boss, library):
    quick_reply_create(account=account, owner=None, title="地图", msgtype="image", library_ident="img_map", actor=boss)
    quick_reply_create(account=account, owner=None, title="退货", msgtype="mpnewsarticle", library_ident="art_refund", actor=boss)
    client.force_login(agent)
    listed = client.get(LIST).content.decode()
    assert "门店地图" in listed and 'src="https://mmbiz.example/map.png"' in listed and "如何申请退换货" in listed
    picker = client.get(PICK, {"q": "地图"}, **htmx()).content.decode()
    assert 'data-msgtype="image" data-library="img_map"' in picker and "门店地图" in picker
    assert 'class="qr-thumb"' in picker and "退货" not in picker


def test_a_reply_whose_item_left_the_library_says_so(client, account, agent, boss, library):
    quick_reply_create(account=account, owner=None, title="地图", msgtype="image", library_ident="img_map", actor=boss)
    library["map"].delete()
    client.force_login(agent)
    assert "No longer in the library" in client.get(PICK, **htmx()).content.decode()
    assert "No longer in the library" in client.get(LIST).content.decode()


def many_articles(account, count: int) -> None:
    """`count` published articles, newer than any other item, so the oldest ones named
    in a test are past what a select lists at once."""
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    LibraryItem.objects.bulk_create(
        LibraryItem(official_account=account, kind="article", ident=f"art_{i}", title=f"文章 {i}", updated_at=now + timedelta(minutes=i))
        for i in range(count)
    )


def test_a_reply_may_name_a_library_item_older_than_those_listed_and_the_form_offers_it(account, library):
    many_articles(account, 250)
    LibraryItem.objects.filter(ident="art_refund").update(updated_at="2020-01-01T00:00:00Z")  # the oldest
    form = QuickReplyForm(
        {"title": "退货", "msgtype": "mpnewsarticle", "library": "mpnewsarticle:art_refund"}, can_share=False, account=account
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["library_ident"] == "art_refund"
    assert 'value="mpnewsarticle:art_refund" selected' in str(form["library"])
    editing = QuickReplyForm(initial={"msgtype": "mpnewsarticle", "library": "mpnewsarticle:art_refund"}, can_share=False, account=account)
    assert 'value="mpnewsarticle:art_refund" selected' in str(editing["library"])
