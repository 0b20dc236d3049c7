"""The conversation page, its fragments, the composer, typing, send status and the
printable transcript."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from messaging.models import OutboundMessage
from sessions_app.models import Customer
from sessions_app.services import Touch, customer_touch, customer_window_close
from tests.factories import AgentFactory, agent_user, auditor, aware, outsider, sent_to_login
from tests.sessions_app.test_views_support import (
    archive,
    emulated_agent,
    enqueued,
    htmx,
    served_customer,
    triggered,
    waiting_customer,
    wired_account,
)
from tests.wechat import media_samples as samples

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]


@pytest.fixture
def account(emulator):
    return wired_account(emulator)


@pytest.fixture
def alice(account, emulator):
    return emulated_agent(account, emulator, "alice", nick="Alice")


@pytest.fixture
def session(account, alice, emulator):
    return served_customer(account, alice, emulator, text="我的快递到哪了？")


def url(name, *args):
    return reverse(f"messaging:{name}", args=args)


def conversation_url(session):
    return url("conversation", session.customer.openid)


def send_url(session):
    return url("send", session.customer.openid)


# ------------------------------------------------------------------ page and fragments


def test_the_conversation_shows_the_timeline_the_session_and_the_window(boss_client, session):
    archive(session.official_account, session.customer.openid, "稍等，我帮您查", opercode=2002, worker=session.agent.kf_account)

    response = boss_client.get(conversation_url(session))

    body = response.content.decode()
    assert response.status_code == 200
    assert "我的快递到哪了？" in body and "稍等，我帮您查" in body
    assert "with Alice" in body
    assert "5 of 5 sends left · window closes in 1\xa0day, 23\xa0hours" in body
    assert 'id="composer"' in body


def test_a_closed_window_is_explained(boss_client, session):
    wrote = timezone.now() - timedelta(hours=49)
    Customer.objects.filter(pk=session.customer_id).update(
        last_message_at=wrote, last_interaction_at=wrote, window_expires_at=wrote + timedelta(hours=48)
    )
    body = boss_client.get(conversation_url(session)).content.decode()
    assert "closed: the customer has not written in 48 h" in body


def test_after_an_unfollow_the_window_shows_closed_not_out_of_sends(boss_client, session):
    customer_window_close(session.customer)  # what the unsubscribe push does
    body = boss_client.get(conversation_url(session)).content.decode()
    assert "closed: the customer unfollowed" in body
    assert "no sends left" not in body
    assert "The reply window is closed; WeChat would refuse the message." in body


def test_a_used_up_budget_is_told_apart_from_a_closed_window(boss_client, session):
    Customer.objects.filter(pk=session.customer_id).update(window_remaining=0)
    body = boss_client.get(conversation_url(session)).content.decode()
    assert "no sends left: WeChat allows no more messages until the customer writes again" in body
    assert "No sends left in this window; it reopens when the customer writes again." in body
    assert "reply window is closed" not in body


def test_a_click_after_the_budget_is_used_shows_its_three_sends_for_the_minute(boss_client, session):
    Customer.objects.filter(pk=session.customer_id).update(window_remaining=0)
    customer_touch(session.official_account, session.customer.openid, timezone.now(), Touch.EVENT)
    body = " ".join(boss_client.get(conversation_url(session)).content.decode().split())
    assert re.search(r"3 of 3 sends left for \d+\sseconds \(menu click, follow or scan\)", body)
    assert re.search(r"then none until the customer writes again \(window closes in 1\sday, 23\shours\)", body)
    assert "3 sends left in this window." in body


def test_a_click_beside_an_unused_message_grant_shows_both_in_the_order_they_are_used(boss_client, session):
    customer_touch(session.official_account, session.customer.openid, timezone.now(), Touch.EVENT)
    body = " ".join(boss_client.get(conversation_url(session)).content.decode().split())
    assert re.search(
        r'3 of 3 sends left for \d+\sseconds \(menu click, follow or scan\)</span> · then '
        r'<span class="grant" data-grant="message">5 of 5 sends left · window closes in 1\sday, 23\shours',
        body,
    )
    assert "8 sends left in this window." in body


def test_the_timeline_fragment_polls_while_showing_the_newest_messages(boss_client, session):
    response = boss_client.get(conversation_url(session), **htmx("timeline"))
    body = response.content.decode()
    assert "<html" not in body and body.lstrip().startswith('<section id="timeline"')
    assert "timelineChanged from:body" in body and "我的快递到哪了？" in body
    assert '<section id="conversation-session"' in body and 'hx-swap-oob="true"' in body


def test_a_history_restore_of_the_conversation_gets_the_whole_page(boss_client, session):
    response = boss_client.get(conversation_url(session), **htmx(), HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    body = response.content.decode()
    assert "<html" in body and '<section id="timeline"' in body and 'id="composer"' in body


def timeline_poll_url(client, session) -> str:
    """The URL the timeline polls, as the page renders it (with its stamp)."""
    import html
    import re

    body = client.get(conversation_url(session), **htmx("timeline")).content.decode()
    return html.unescape(re.search(r'<section id="timeline"[^>]*hx-get="([^"]+)"', body).group(1))


def test_a_timeline_poll_with_nothing_new_is_answered_204(boss_client, session):
    poll = timeline_poll_url(boss_client, session)
    assert "?stamp=" in poll
    response = boss_client.get(poll, **htmx("timeline"))
    assert response.status_code == 204 and response.content == b""


def test_a_new_message_makes_the_timeline_poll_render_it(boss_client, session):
    poll = timeline_poll_url(boss_client, session)
    archive(session.official_account, session.customer.openid, "还在吗？")
    response = boss_client.get(poll, **htmx("timeline"))
    body = response.content.decode()
    assert response.status_code == 200 and "还在吗？" in body
    assert timeline_poll_url(boss_client, session) != poll


def test_a_record_synced_late_with_an_older_time_still_shows(boss_client, session):
    poll = timeline_poll_url(boss_client, session)
    archive(session.official_account, session.customer.openid, "昨天的回复", opercode=2002,
            worker=session.agent.kf_account, at=timezone.now() - timedelta(hours=20))
    assert "昨天的回复" in boss_client.get(poll, **htmx("timeline")).content.decode()


def test_a_message_sent_from_kfadmin_makes_the_timeline_poll_render_it(boss_client, session, alice):
    poll = timeline_poll_url(boss_client, session)
    boss_client.post(send_url(session), {"msgtype": "text", "as_agent": alice.pk, "content": "马上为您处理"}, **htmx("composer"))
    response = boss_client.get(poll, **htmx("timeline"))
    assert response.status_code == 200 and "马上为您处理" in response.content.decode()


@pytest.mark.parametrize("stamp", ["", "0.0", "garbage", "99999999.99999999"])
def test_an_unknown_stamp_gets_the_whole_timeline(boss_client, session, stamp):
    response = boss_client.get(conversation_url(session) + f"?stamp={stamp}", **htmx("timeline"))
    assert response.status_code == 200 and "我的快递到哪了？" in response.content.decode()


def test_a_stamp_does_not_open_another_agents_conversation(client, account, session, emulator):
    from tests.factories import agent_user

    stranger = emulated_agent(account, emulator, "bob")
    client.force_login(agent_user(account, agent=stranger, username="bob_user"))
    poll = conversation_url(session) + "?stamp=0.0"
    assert client.get(poll, **htmx("timeline")).status_code == 404


def test_the_session_box_fragment_refreshes_on_its_own(boss_client, session):
    body = boss_client.get(conversation_url(session), **htmx("conversation-session")).content.decode()
    assert body.lstrip().startswith('<section id="conversation-session"')
    assert "sessionsChanged from:body" in body


def test_the_composer_switches_type_as_a_fragment_and_as_a_page(boss_client, session):
    fragment = boss_client.get(conversation_url(session) + "?type=news", **htmx("composer")).content.decode()
    page = boss_client.get(conversation_url(session) + "?type=news").content.decode()
    for body in (fragment, page):
        assert 'name="msgtype" value="news"' in body
        assert 'name="url"' in body and 'name="picurl"' in body
    assert "<html" not in fragment


def test_a_history_result_opens_the_conversation_at_that_record(boss_client, session):
    account = session.official_account
    openid = session.customer.openid
    start = timezone.now() - timedelta(days=3)
    records = [archive(account, openid, f"旧消息 {n}", at=start + timedelta(minutes=n)) for n in range(150)]
    target = records[20]

    body = boss_client.get(conversation_url(session) + f"?at={target.pk}").content.decode()

    assert f'id="r{target.pk}"' in body and "focus" in body
    assert "旧消息 0" in body and "旧消息 69" in body  # up to 50 before and after
    assert "旧消息 71" not in body
    assert "Latest messages" in body
    timeline_tag = body[body.index('<section id="timeline"'):].split(">", 1)[0]
    assert "hx-trigger" not in timeline_tag  # a look into the past does not poll


def test_earlier_messages_are_reached_with_a_cursor(boss_client, session):
    account = session.official_account
    openid = session.customer.openid
    start = timezone.now() - timedelta(days=3)
    for n in range(120):
        archive(account, openid, f"第{n}条", at=start + timedelta(minutes=n))

    latest = boss_client.get(conversation_url(session)).content.decode()
    assert "第119条" in latest and "第0条" not in latest
    cursor = latest.split("?before=")[1].split('"')[0]
    earlier = boss_client.get(conversation_url(session) + f"?before={cursor}").content.decode()
    assert "第0条" in earlier and "第119条" not in earlier


def test_the_conversation_requires_login(client, session):
    assert sent_to_login(client.get(conversation_url(session)))
    assert sent_to_login(client.get(conversation_url(session), **htmx("timeline")), htmx=True)


def test_an_auditor_reads_the_conversation_without_a_composer(client, account, session):
    client.force_login(auditor(account))
    body = client.get(conversation_url(session)).content.decode()
    assert "我的快递到哪了？" in body
    assert 'id="composer"' not in body and url("send", session.customer.openid) not in body
    assert client.get(conversation_url(session), **htmx("composer")).status_code == 403


def test_another_accounts_customer_is_not_found(client, session):
    client.force_login(outsider())
    assert client.get(conversation_url(session)).status_code == 404
    assert client.get(conversation_url(session), **htmx("timeline")).status_code == 404


def test_an_unknown_customer_is_not_found(boss_client):
    assert boss_client.get(url("conversation", "o_nobody")).status_code == 404


def test_the_conversation_accepts_only_get(boss_client, session):
    assert boss_client.post(conversation_url(session)).status_code == 405


def test_an_agent_sees_their_customers_and_waiting_ones_but_not_others(client, account, emulator, alice, session):
    carol = emulated_agent(account, emulator, "carol")
    theirs = served_customer(account, carol, emulator)
    waiting = waiting_customer(account, emulator)
    client.force_login(agent_user(account, agent=alice))
    assert client.get(conversation_url(session)).status_code == 200
    assert client.get(url("conversation", waiting.openid)).status_code == 200
    assert client.get(conversation_url(theirs)).status_code == 404


def test_an_archived_customer_kfadmin_never_saw_write_can_be_read_but_not_written_to(boss_client, account):
    archive(account, "o_archive_only", "很久以前的消息", opercode=2002, worker="kf1@x")
    body = boss_client.get(url("conversation", "o_archive_only")).content.decode()
    assert "很久以前的消息" in body and "has not seen this customer write" in body
    assert boss_client.post(url("send", "o_archive_only"), {"msgtype": "text", "content": "hi"}).status_code == 404


def test_an_archived_customer_whose_messages_the_timeline_shows_is_not_said_to_never_have_written(boss_client, account):
    archive(account, "o_archive_only", "我想退货", opercode=2001, at=aware(2025, 3, 1, 9, 30))

    body = boss_client.get(url("conversation", "o_archive_only")).content.decode()

    assert "我想退货" in body
    assert "has not seen this customer write" not in body
    assert "This customer last wrote at 2025-03-01 09:30" in body


# ------------------------------------------------------------------ send


def test_sending_queues_the_message_and_refreshes_the_timeline(boss_client, session, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = boss_client.post(
            send_url(session), {"msgtype": "text", "as_agent": alice.pk, "content": "您好"}, **htmx("composer")
        )

    assert response.status_code == 200
    assert "timelineChanged" in triggered(response)
    assert len(enqueued(callbacks)) == 1
    outbound = OutboundMessage.objects.get()
    assert (outbound.msgtype, outbound.payload, outbound.agent, outbound.status) == ("text", {"content": "您好"}, alice, "queued")
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="composer"')
    assert "您好" not in body  # a fresh composer


def test_the_reply_window_box_refreshes_whenever_the_timeline_changes(boss_client, session):
    # A send refreshes the timeline; a fast worker may have delivered it by then, so no
    # status poll follows: the box must refresh on the same event to count the send.
    body = boss_client.get(conversation_url(session)).content.decode()
    box = body[body.index('<section id="conversation-session"'):]
    trigger = box[box.index('hx-trigger="') + len('hx-trigger="'):]
    assert "timelineChanged from:body" in trigger[: trigger.index('"')]


def test_sending_without_htmx_redirects_to_the_message(boss_client, session, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        picture = SimpleUploadedFile("parcel.png", samples.png(), content_type="image/png")
        response = boss_client.post(send_url(session), {"msgtype": "image", "as_agent": alice.pk, "file": picture})
    outbound = OutboundMessage.objects.get()
    assert outbound.media is not None and outbound.media.content_type == "image/png"
    assert response.status_code == 302
    assert response["Location"] == f"{conversation_url(session)}#o{outbound.pk}"


def test_a_queued_message_appears_in_the_timeline_and_polls_its_status(boss_client, session, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        boss_client.post(send_url(session), {"msgtype": "text", "as_agent": alice.pk, "content": "请稍等"})
    outbound = OutboundMessage.objects.get()

    timeline = boss_client.get(conversation_url(session), **htmx("timeline")).content.decode()
    assert f'id="o{outbound.pk}"' in timeline and "请稍等" in timeline
    status = boss_client.get(url("outbound", outbound.pk), **htmx(f"o{outbound.pk}")).content.decode()
    assert "queued" in status and 'hx-trigger="every 1s"' in status
    assert "conversation-session" not in status

    OutboundMessage.objects.filter(pk=outbound.pk).update(status="sent", sent_at=timezone.now())
    final = boss_client.get(url("outbound", outbound.pk), **htmx(f"o{outbound.pk}")).content.decode()
    message = final.split('<section id="conversation-session"')[0]
    assert ">sent<" in message and "hx-trigger" not in message  # polling stops
    # ...and the reply window beside it is refreshed out of band.
    assert 'id="conversation-session"' in final and 'hx-swap-oob="true"' in final


def test_a_failed_message_shows_wechats_reason(boss_client, session, alice):
    outbound = OutboundMessage.objects.create(
        official_account=session.official_account, customer=session.customer, agent=alice, msgtype="text",
        payload={"content": "x"}, status="failed", errcode=45015,
        error="This customer has not written in the last 48 hours",
    )
    body = boss_client.get(url("outbound", outbound.pk), **htmx(f"o{outbound.pk}")).content.decode()
    assert "failed" in body and "has not written in the last 48 hours" in body and "45015" in body


def test_the_send_status_without_htmx_leads_to_the_conversation(boss_client, session, alice):
    outbound = OutboundMessage.objects.create(
        official_account=session.official_account, customer=session.customer, agent=alice, msgtype="text", payload={"content": "x"}
    )
    response = boss_client.get(url("outbound", outbound.pk))
    assert response.status_code == 302 and response["Location"].endswith(f"#o{outbound.pk}")


def test_the_send_status_of_another_account_is_not_found(client, session, alice):
    outbound = OutboundMessage.objects.create(
        official_account=session.official_account, customer=session.customer, agent=alice, msgtype="text", payload={"content": "x"}
    )
    client.force_login(outsider())
    assert client.get(url("outbound", outbound.pk), **htmx()).status_code == 404


def test_the_send_status_accepts_only_get(boss_client, session, alice):
    outbound = OutboundMessage.objects.create(
        official_account=session.official_account, customer=session.customer, agent=alice, msgtype="text", payload={"content": "x"}
    )
    assert boss_client.post(url("outbound", outbound.pk)).status_code == 405


def test_form_errors_are_shown_next_to_the_fields(boss_client, session, alice):
    response = boss_client.post(
        send_url(session), {"msgtype": "music", "as_agent": alice.pk, "musicurl": "ftp://x", "thumb_media_id": ""}, **htmx("composer")
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "Enter a full address starting with http:// or https://." in body or "Enter a valid URL." in body
    assert "This field is required." in body
    assert not OutboundMessage.objects.exists()


def test_an_overlong_text_is_refused_with_the_limit(boss_client, session, alice):
    body = boss_client.post(
        send_url(session), {"msgtype": "text", "as_agent": alice.pk, "content": "长" * 700}, **htmx("composer")
    ).content.decode()
    assert "at most 2048 bytes" in body
    assert not OutboundMessage.objects.exists()


def test_a_closed_window_refuses_the_send_with_the_reason(boss_client, session, alice, emulator):
    Customer.objects.filter(pk=session.customer_id).update(window_expires_at=timezone.now() - timedelta(minutes=1))
    body = boss_client.post(
        send_url(session), {"msgtype": "text", "as_agent": alice.pk, "content": "hi"}, **htmx("composer")
    ).content.decode()
    assert "has not written in the last 48 hours" in body
    assert not OutboundMessage.objects.exists()
    assert not [c for c in emulator.calls if c.path == "/cgi-bin/message/custom/send"]


def test_the_menu_composer_adds_and_removes_option_rows_without_sending(boss_client, session, alice):
    base = {"msgtype": "msgmenu", "as_agent": alice.pk, "head_content": "满意吗？", "opt_count": "2",
            "opt-0-id": "101", "opt-0-content": "满意", "opt-1-id": "102", "opt-1-content": "不满意"}

    added = boss_client.post(send_url(session), {**base, "menu_action": "add"}, **htmx("composer")).content.decode()
    assert 'name="opt_count" value="3"' in added and 'name="opt-2-id"' in added and 'value="103"' in added
    assert "满意吗？" in added and "This field is required." not in added

    removed = boss_client.post(send_url(session), {**base, "menu_action": "remove-0"}, **htmx("composer")).content.decode()
    assert 'name="opt_count" value="1"' in removed
    assert 'value="不满意"' in removed and 'value="满意"' not in removed
    assert not OutboundMessage.objects.exists()


def test_a_menu_is_sent_with_its_options(boss_client, session, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        boss_client.post(send_url(session), {
            "msgtype": "msgmenu", "as_agent": alice.pk, "head_content": "满意吗？", "tail_content": "", "opt_count": "2",
            "opt-0-id": "101", "opt-0-content": "满意", "opt-1-id": "102", "opt-1-content": "不满意",
        }, **htmx("composer"))
    assert OutboundMessage.objects.get().payload == {
        "head_content": "满意吗？", "tail_content": "",
        "list": [{"id": "101", "content": "满意"}, {"id": "102", "content": "不满意"}],
    }


def test_news_is_sent_as_exactly_one_article(boss_client, session, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        boss_client.post(send_url(session), {
            "msgtype": "news", "as_agent": alice.pk, "title": "新品", "url": "https://shop.example/n", "description": "", "picurl": "",
        })
    assert OutboundMessage.objects.get().payload == {
        "articles": [{"title": "新品", "description": "", "url": "https://shop.example/n", "picurl": ""}]
    }


def _send_as_choices(body: str) -> tuple[list[str], str | None]:
    """The "Send as" options (values) and the one selected."""
    select = re.search(r'<select name="as_agent".*?</select>', body, re.S).group(0)
    options = re.findall(r'<option value="([^"]*)"( selected)?', select)
    return [value for value, _ in options], next((value for value, chosen in options if chosen), None)


def test_send_as_proposes_the_agent_serving_the_session(boss_client, account, emulator, alice, session):
    zed = emulated_agent(account, emulator, "zed", nick="Zed")
    first = emulated_agent(account, emulator, "aaron", nick="Aaron")  # listed first
    session.agent = zed
    session.save()

    values, selected = _send_as_choices(boss_client.get(conversation_url(session)).content.decode())

    assert values[0] == str(first.pk)
    assert selected == str(zed.pk)


def test_send_as_never_offers_an_unbound_agent(boss_client, account, alice, session):
    unbound = AgentFactory(official_account=account, kf_account=f"new@{account.wechat_id}", kf_wx="", online_status=1)

    values, _ = _send_as_choices(boss_client.get(conversation_url(session)).content.decode())

    assert str(unbound.pk) not in values
    body = boss_client.post(
        send_url(session), {"msgtype": "text", "as_agent": unbound.pk, "content": "hi"}, **htmx("composer")
    ).content.decode()
    assert "only agents bound to a WeChat user can send" in body
    assert not OutboundMessage.objects.exists()


def test_without_a_session_agent_to_propose_the_supervisor_picks_one(boss_client, account, emulator, alice):
    emulated_agent(account, emulator, "bob", nick="Bob")
    customer = waiting_customer(account, emulator)

    values, selected = _send_as_choices(boss_client.get(url("conversation", customer.openid)).content.decode())

    assert values[0] == selected == ""  # "Choose an agent", not whoever is listed first
    body = boss_client.post(
        url("send", customer.openid), {"msgtype": "text", "as_agent": "", "content": "hi"}, **htmx("composer")
    ).content.decode()
    assert "This field is required" in body
    assert not OutboundMessage.objects.exists()


def test_the_only_bound_agent_is_proposed(boss_client, account, emulator, alice):
    customer = waiting_customer(account, emulator)
    values, selected = _send_as_choices(boss_client.get(url("conversation", customer.openid)).content.decode())
    assert (values, selected) == ([str(alice.pk)], str(alice.pk))


def test_an_agent_is_proposed_as_themselves(client, account, emulator, alice):
    client.force_login(agent_user(account, agent=alice))
    customer = waiting_customer(account, emulator)
    emulated_agent(account, emulator, "bob")
    values, selected = _send_as_choices(client.get(url("conversation", customer.openid)).content.decode())
    assert (values, selected) == ([str(alice.pk)], str(alice.pk))


def test_an_auditor_cannot_send(client, account, session, alice):
    client.force_login(auditor(account))
    data = {"msgtype": "text", "as_agent": alice.pk, "content": "hi"}
    assert client.post(send_url(session), data).status_code == 403
    assert client.post(send_url(session), data, **htmx("composer")).status_code == 403
    assert not OutboundMessage.objects.exists()


def test_an_agent_sends_only_as_themselves(client, account, emulator, alice, session, django_capture_on_commit_callbacks):
    carol = emulated_agent(account, emulator, "carol")
    client.force_login(agent_user(account, agent=alice))

    body = client.post(send_url(session), {"msgtype": "text", "as_agent": carol.pk, "content": "hi"}, **htmx("composer")).content.decode()
    assert "Choose one of the listed agents; only agents bound to a WeChat user can send." in body
    with django_capture_on_commit_callbacks(execute=False):
        client.post(send_url(session), {"msgtype": "text", "as_agent": alice.pk, "content": "hi"}, **htmx("composer"))
    assert OutboundMessage.objects.get().agent == alice


def test_sending_to_another_accounts_customer_is_not_found(client, session):
    intruder = outsider()
    client.force_login(intruder)
    agent = AgentFactory(official_account=intruder.memberships.get().official_account)
    assert client.post(send_url(session), {"msgtype": "text", "as_agent": agent.pk, "content": "hi"}).status_code == 404


def test_send_accepts_only_post(boss_client, session):
    assert boss_client.get(send_url(session)).status_code == 405


# ------------------------------------------------------------------ typing


def typing_url(session):
    return url("typing", session.customer.openid)


def test_the_typing_button_shows_the_indicator(boss_client, session, emulator):
    response = boss_client.post(typing_url(session), {"command": "Typing"}, **htmx("typing"))
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="typing"')
    assert "for up to 15 seconds" in body
    assert [c.json for c in emulator.calls if c.path == "/cgi-bin/message/custom/typing"] == [
        {"touser": session.customer.openid, "command": "Typing"}
    ]


def test_typing_too_long_after_the_customer_wrote_is_explained(boss_client, session, emulator):
    Customer.objects.filter(pk=session.customer_id).update(last_interaction_at=timezone.now() - timedelta(minutes=2))
    body = boss_client.post(typing_url(session), {"command": "Typing"}, **htmx("typing")).content.decode()
    assert "within 30 seconds of the customer&#x27;s last message" in body
    assert not [c for c in emulator.calls if c.path == "/cgi-bin/message/custom/typing"]


def test_typing_without_htmx_redirects_with_a_message(boss_client, session):
    response = boss_client.post(typing_url(session), {"command": "Typing"})
    assert response.status_code == 302 and response["Location"] == conversation_url(session)


def test_an_auditor_cannot_send_typing(client, account, session, emulator):
    client.force_login(auditor(account))
    assert client.post(typing_url(session), {"command": "Typing"}, **htmx("typing")).status_code == 403
    assert not emulator.calls


def test_typing_for_another_accounts_customer_is_not_found(client, session):
    client.force_login(outsider())
    assert client.post(typing_url(session), {"command": "Typing"}).status_code == 404


def test_typing_accepts_only_post(boss_client, session):
    assert boss_client.get(typing_url(session)).status_code == 405


# ------------------------------------------------------------------ transcript


def test_the_transcript_lists_the_whole_conversation_for_printing(boss_client, session):
    archive(session.official_account, session.customer.openid, "已发货", opercode=2002, worker=session.agent.kf_account)
    response = boss_client.get(url("transcript", session.customer.openid))
    body = response.content.decode()
    assert response.status_code == 200
    assert "我的快递到哪了？" in body and "已发货" in body
    assert "data-print" in body and "js/print.js" in body


def test_the_transcripts_sender_column_is_not_headed_with_the_date_filters_from(boss_client, session):
    body = boss_client.get(url("transcript", session.customer.openid), HTTP_ACCEPT_LANGUAGE="zh-hans").content.decode()

    assert '<th scope="col">发送方</th>' in body
    assert "起始" not in body.split("<thead>")[1].split("</thead>")[0]
    assert AuditEvent.objects.get(action="history_export").target == "transcript"


def test_an_auditor_may_print_a_transcript(client, account, session):
    client.force_login(auditor(account))
    assert client.get(url("transcript", session.customer.openid)).status_code == 200


def test_the_transcript_of_another_accounts_customer_is_not_found(client, session):
    client.force_login(outsider())
    assert client.get(url("transcript", session.customer.openid)).status_code == 404


def test_the_transcript_requires_login(client, session):
    assert client.get(url("transcript", session.customer.openid)).status_code == 302


def test_the_transcript_accepts_only_get(boss_client, session):
    assert boss_client.post(url("transcript", session.customer.openid)).status_code == 405


def test_a_message_sent_from_kfadmin_shows_once_with_its_status_not_again_as_its_archived_copy(
    boss_client, session, alice, emulator, django_capture_on_commit_callbacks
):
    from messaging.delivery import outbound_deliver

    openid = session.customer.openid
    archive(session.official_account, openid, "好的", opercode=2002, worker=alice.kf_account,
            at=timezone.now() - timedelta(hours=2))  # the same words, said earlier: a different message
    with django_capture_on_commit_callbacks(execute=False):
        boss_client.post(send_url(session), {"msgtype": "text", "as_agent": alice.pk, "content": "好的"})
    outbound_deliver(outbound_id=OutboundMessage.objects.get().pk)  # archives a copy, as the sync would

    body = boss_client.get(conversation_url(session), **htmx("timeline")).content.decode()

    assert body.count(">好的<") == 2  # the earlier record and the send, not the copy
    assert f'id="o{OutboundMessage.objects.get().pk}"' in body and ">sent<" in body


@pytest.mark.parametrize("name", ["send", "typing", "transcript"])
def test_the_conversation_endpoints_require_login(client, session, name):
    target = url(name, session.customer.openid)
    assert sent_to_login(client.get(target))
    post = client.post(target, {"msgtype": "text", "content": "x", "command": "Typing"}, **htmx())
    assert sent_to_login(post, htmx=True)
    assert not OutboundMessage.objects.exists()


def test_the_send_status_requires_login(client, session, alice):
    outbound = OutboundMessage.objects.create(
        official_account=session.official_account, customer=session.customer, agent=alice, msgtype="text", payload={"content": "x"}
    )
    assert sent_to_login(client.get(url("outbound", outbound.pk), **htmx()), htmx=True)


def test_a_message_no_worker_picked_up_stops_polling_and_says_why(boss_client, session, alice):
    outbound = OutboundMessage.objects.create(
        official_account=session.official_account, customer=session.customer, agent=alice, msgtype="text",
        payload={"content": "x"}, created_at=timezone.now() - timedelta(minutes=15),
    )
    body = boss_client.get(url("outbound", outbound.pk), **htmx(f"o{outbound.pk}")).content.decode()
    assert "stuck" in body and "Check that a Celery worker consumes" in body
    assert "hx-trigger" not in body
