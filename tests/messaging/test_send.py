"""Sending kf messages: queueing with the window check, delivery against the emulator
(the exact wire payload of every type), WeChat's refusals, retries and typing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from kfadmin.wechat import WeChatConflict, WeChatSystemBusy
from messaging.delivery import outbound_deliver, outbound_give_up
from messaging.forms import COMPOSER_FORMS
from messaging.models import MessageRecord, OutboundMessage
from messaging.services import SendRefused, outbound_queue, typing_send
from sessions_app.models import Customer
from sessions_app.selectors import customer_window_state
from tests.sessions_app.test_views_support import (
    emulated_agent,
    enqueued,
    waiting_customer,
    wired_account,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]

SEND = "/cgi-bin/message/custom/send"
TYPING = "/cgi-bin/message/custom/typing"


@pytest.fixture
def account(emulator):
    return wired_account(emulator)


@pytest.fixture
def alice(account, emulator):
    return emulated_agent(account, emulator, "alice")


@pytest.fixture
def customer(account, emulator):
    return waiting_customer(account, emulator)


def send_calls(emulator):
    return [c.json for c in emulator.calls if c.path == SEND]


def queue_and_deliver(django_capture_on_commit_callbacks, **kwargs):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        outbound = outbound_queue(**kwargs)
    assert len(enqueued(callbacks)) == 1  # the task is enqueued once the row is committed
    return outbound_deliver(outbound_id=outbound.pk)


# Every message type as the composer would produce it, and what WeChat must receive.
PAYLOADS = {
    "text": {"content": '您好，请看 <a href="https://shop.example/o/1">订单</a>'},
    "image": {"media_id": "MEDIA_IMG_1"},
    "voice": {"media_id": "MEDIA_VOICE_1"},
    "video": {"media_id": "MEDIA_VID", "thumb_media_id": "THUMB", "title": "开箱", "description": "如何安装"},
    "music": {
        "title": "Song", "description": "", "musicurl": "https://m.example/a.mp3",
        "hqmusicurl": "https://m.example/a-hq.mp3", "thumb_media_id": "THUMB",
    },
    "news": {"articles": [{"title": "新品", "description": "秋季新品", "url": "https://shop.example/n", "picurl": ""}]},
    "mpnews": {"media_id": "MPNEWS_1"},
    "mpnewsarticle": {"article_id": "ARTICLE_1"},
    "msgmenu": {
        "head_content": "您对本次服务满意吗？",
        "list": [{"id": "101", "content": "满意"}, {"id": "102", "content": "不满意"}],
        "tail_content": "欢迎再来",
    },
    "wxcard": {"card_id": "CARD_1"},
    "miniprogrampage": {
        "title": "查看订单", "appid": "wx0123456789abcdef", "pagepath": "pages/order/index?id=1", "thumb_media_id": "THUMB",
    },
}


def test_there_is_a_composer_form_for_each_of_the_eleven_types():
    assert set(COMPOSER_FORMS) == set(PAYLOADS) == set(OutboundMessage.MsgType.values)


@pytest.mark.parametrize("msgtype", sorted(PAYLOADS))
def test_each_type_reaches_wechat_with_the_exact_wire_payload(
    msgtype, account, emulator, alice, customer, boss, django_capture_on_commit_callbacks
):
    # The ids the payloads name, held by the account (WeChat refuses others with 40007).
    for kind, media_id in (
        ("image", "MEDIA_IMG_1"), ("voice", "MEDIA_VOICE_1"), ("video", "MEDIA_VID"), ("thumb", "THUMB"),
        ("news", "MPNEWS_1"), ("article", "ARTICLE_1"),
    ):
        emulator.media(kind, media_id)
    outbound = queue_and_deliver(
        django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice,
        msgtype=msgtype, payload=PAYLOADS[msgtype], actor=boss,
    )

    assert outbound.status == OutboundMessage.Status.SENT, outbound.error
    assert send_calls(emulator) == [
        {
            "touser": customer.openid,
            "msgtype": msgtype,
            msgtype: PAYLOADS[msgtype],
            "customservice": {"kf_account": alice.kf_account},
        }
    ]


def test_a_sent_message_uses_the_budget_and_is_archived_for_search(
    account, emulator, alice, customer, boss, django_capture_on_commit_callbacks
):
    outbound = queue_and_deliver(
        django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice,
        msgtype="text", payload={"content": "马上为您处理"}, actor=boss,
    )

    assert outbound.sent_at is not None and outbound.attempts == 1
    customer.refresh_from_db()
    assert customer.window_remaining == 4
    record = MessageRecord.objects.get(opercode=2002)
    assert (record.worker, record.openid, record.text, record.source) == (
        alice.kf_account, customer.openid, "马上为您处理", "kfadmin"
    )
    assert AuditEvent.objects.filter(action="message_send", result="ok").count() == 1
    assert AuditEvent.objects.filter(action="message_queue").count() == 1


def test_a_closed_window_is_refused_before_calling_wechat(account, emulator, alice, customer, boss):
    Customer.objects.filter(pk=customer.pk).update(window_expires_at=timezone.now() - timedelta(seconds=1))
    customer.refresh_from_db()

    with pytest.raises(SendRefused) as refused:
        outbound_queue(account=account, customer=customer, agent=alice, msgtype="text", payload={"content": "hi"}, actor=boss)

    assert refused.value.errcode == 45015
    assert "has not written in the last 48 hours" in refused.value.explanation
    assert send_calls(emulator) == []
    assert not OutboundMessage.objects.exists()
    assert AuditEvent.objects.get(action="message_send").errcode == 45015


def test_a_used_up_budget_is_refused_before_calling_wechat(account, emulator, alice, customer, boss):
    Customer.objects.filter(pk=customer.pk).update(window_remaining=0)
    customer.refresh_from_db()
    with pytest.raises(SendRefused) as refused:
        outbound_queue(account=account, customer=customer, agent=alice, msgtype="text", payload={"content": "hi"}, actor=boss)
    assert refused.value.errcode == 45047
    assert send_calls(emulator) == []


def test_messages_already_queued_count_against_the_budget(account, alice, customer, boss, django_capture_on_commit_callbacks):
    Customer.objects.filter(pk=customer.pk).update(window_remaining=2)
    customer.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=False):
        for n in range(2):
            outbound_queue(account=account, customer=customer, agent=alice, msgtype="text", payload={"content": f"{n}"}, actor=boss)
    with pytest.raises(SendRefused) as refused:
        outbound_queue(account=account, customer=customer, agent=alice, msgtype="text", payload={"content": "3"}, actor=boss)
    assert refused.value.errcode == 45047
    assert "already waiting to be sent" in refused.value.explanation


def test_a_window_that_closed_while_queued_fails_at_delivery_without_calling_wechat(
    account, emulator, alice, customer, boss, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        outbound = outbound_queue(account=account, customer=customer, agent=alice, msgtype="text", payload={"content": "hi"}, actor=boss)
    Customer.objects.filter(pk=customer.pk).update(window_remaining=0)

    delivered = outbound_deliver(outbound_id=outbound.pk)

    assert (delivered.status, delivered.errcode) == ("failed", 45047)
    assert send_calls(emulator) == []


def test_wechats_45015_marks_the_message_failed_with_the_sentence(
    account, emulator, alice, customer, boss, django_capture_on_commit_callbacks
):
    # kfadmin believes the window is open; WeChat knows the customer unfollowed.
    emulator.state.customer_event(appid=emulator.appid, openid=customer.openid, event="unfollow")

    outbound = queue_and_deliver(
        django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice,
        msgtype="text", payload={"content": "hi"}, actor=boss,
    )

    assert (outbound.status, outbound.errcode) == ("failed", 45015)
    assert "has not written in the last 48 hours" in outbound.error
    assert len(send_calls(emulator)) == 1
    customer.refresh_from_db()
    assert customer.window_remaining == 0  # no more sends until they write again
    state = customer_window_state(customer=customer)
    assert (state.is_open, state.budget_used_up) == (False, False)  # closed, not just used up
    assert not MessageRecord.objects.filter(opercode=2002).exists()
    event = AuditEvent.objects.get(action="message_send")
    assert (event.result, event.errcode) == ("error", 45015)


def test_wechats_45047_marks_the_message_failed_with_the_sentence(
    account, emulator, alice, customer, boss, django_capture_on_commit_callbacks
):
    emulator.control("add_fault", kind="errcode", errcode=45047, path_prefix=SEND, next=1)

    outbound = queue_and_deliver(
        django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice,
        msgtype="image", payload={"media_id": "M"}, actor=boss,
    )

    assert (outbound.status, outbound.errcode) == ("failed", 45047)
    assert "as many messages as WeChat allows" in outbound.error
    customer.refresh_from_db()
    state = customer_window_state(customer=customer)
    assert (state.is_open, state.budget_used_up, state.remaining) == (False, True, 0)  # open, sends used up


def test_a_transient_failure_puts_the_message_back_in_the_queue_for_a_retry(
    account, emulator, alice, customer, boss, django_capture_on_commit_callbacks
):
    emulator.control("add_fault", kind="errcode", errcode=-1, path_prefix=SEND, next=1)
    with django_capture_on_commit_callbacks(execute=False):
        outbound = outbound_queue(account=account, customer=customer, agent=alice, msgtype="text", payload={"content": "hi"}, actor=boss)

    with pytest.raises(WeChatSystemBusy):
        outbound_deliver(outbound_id=outbound.pk)
    outbound.refresh_from_db()
    assert (outbound.status, outbound.errcode) == ("queued", -1)
    assert "busy" in outbound.error

    retried = outbound_deliver(outbound_id=outbound.pk)
    assert (retried.status, retried.attempts) == ("sent", 2)


def test_giving_up_after_the_retries_marks_the_message_failed(account, alice, customer, boss, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        outbound = outbound_queue(account=account, customer=customer, agent=alice, msgtype="text", payload={"content": "hi"}, actor=boss)
    failed = outbound_give_up(outbound_id=outbound.pk, error=WeChatSystemBusy(-1, "system error"))
    assert failed.status == "failed"
    assert "after several attempts" in failed.error and "busy" in failed.error


def test_a_second_delivery_of_the_same_message_sends_nothing(
    account, emulator, alice, customer, boss, django_capture_on_commit_callbacks
):
    outbound = queue_and_deliver(
        django_capture_on_commit_callbacks, account=account, customer=customer, agent=alice,
        msgtype="text", payload={"content": "once"}, actor=boss,
    )
    assert outbound_deliver(outbound_id=outbound.pk) is None
    assert len(send_calls(emulator)) == 1


def test_a_message_without_an_agent_goes_out_as_the_official_account(
    account, emulator, customer, boss, django_capture_on_commit_callbacks
):
    queue_and_deliver(
        django_capture_on_commit_callbacks, account=account, customer=customer, agent=None,
        msgtype="text", payload={"content": "hi"}, actor=boss,
    )
    assert "customservice" not in send_calls(emulator)[0]


# ------------------------------------------------------------------ typing


def test_typing_right_after_the_customer_wrote_reaches_wechat(account, emulator, customer, boss):
    typing_send(account=account, customer=customer, command="Typing", actor=boss)
    assert [c.json for c in emulator.calls if c.path == TYPING] == [{"touser": customer.openid, "command": "Typing"}]
    assert AuditEvent.objects.get(action="typing_send").result == "ok"


def test_typing_30_seconds_after_the_last_interaction_is_refused_before_calling_wechat(account, emulator, customer, boss):
    Customer.objects.filter(pk=customer.pk).update(last_interaction_at=timezone.now() - timedelta(seconds=31))
    customer.refresh_from_db()
    with pytest.raises(SendRefused) as refused:
        typing_send(account=account, customer=customer, command="Typing", actor=boss)
    assert refused.value.errcode == 45080
    assert "within 30 seconds" in refused.value.explanation
    assert not [c for c in emulator.calls if c.path == TYPING]


def test_typing_twice_reports_wechats_45081(account, emulator, customer, boss):
    typing_send(account=account, customer=customer, command="Typing", actor=boss)
    with pytest.raises(WeChatConflict) as raised:
        typing_send(account=account, customer=customer, command="Typing", actor=boss)
    assert raised.value.errcode == 45081
    assert "already showing" in raised.value.explanation


def test_cancel_typing_needs_no_recent_interaction(account, emulator, customer, boss):
    Customer.objects.filter(pk=customer.pk).update(last_interaction_at=timezone.now() - timedelta(minutes=5))
    customer.refresh_from_db()
    typing_send(account=account, customer=customer, command="CancelTyping", actor=boss)
    assert [c.json["command"] for c in emulator.calls if c.path == TYPING] == ["CancelTyping"]


def test_a_redelivery_long_after_a_worker_died_mid_send_leaves_it_unknown_instead_of_sending_twice(
    account, emulator, alice, customer, boss, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        outbound = outbound_queue(account=account, customer=customer, agent=alice, msgtype="text", payload={"content": "hi"}, actor=boss)
    budget = Customer.objects.get(pk=customer.pk).window_remaining
    # A worker claimed it and died during the WeChat call, eleven minutes ago.
    OutboundMessage.objects.filter(pk=outbound.pk).update(
        status="sending", attempted_at=timezone.now() - timedelta(minutes=11)
    )

    assert outbound_deliver(outbound_id=outbound.pk) is None

    outbound.refresh_from_db()
    assert outbound.status == "unknown" and "may or may not have delivered it" in outbound.error
    assert send_calls(emulator) == []
    # WeChat may have counted it: kfadmin counts it too.
    assert Customer.objects.get(pk=customer.pk).window_remaining == budget - 1


def test_a_fresh_claim_by_another_worker_is_left_alone(account, emulator, alice, customer, boss, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        outbound = outbound_queue(account=account, customer=customer, agent=alice, msgtype="text", payload={"content": "hi"}, actor=boss)
    OutboundMessage.objects.filter(pk=outbound.pk).update(status="sending")
    assert outbound_deliver(outbound_id=outbound.pk) is None
    outbound.refresh_from_db()
    assert outbound.status == "sending"
