"""Failures read as one translated sentence wherever they are shown: WeChat errors,
transport failures (never the URL), stored errors (kept in English, translated at
display) and Django's own password messages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from accounts.sentences import _TRANSPORT_DETAILS, sentence_translate
from kfadmin.wechat import TRANSPORT_SENTENCE, WeChatTransportError
from messaging.delivery import outbound_deliver, outbound_give_up
from messaging.models import OutboundMessage
from messaging.services import outbound_queue
from sessions_app.models import Customer, KfSession
from tests.factories import OfficialAccountFactory, SyncStateFactory, supervisor
from tests.sessions_app.test_views_support import (
    emulated_agent,
    htmx,
    served_customer,
    wired_account,
)

pytestmark = pytest.mark.django_db

SEND = "/cgi-bin/message/custom/send"
CLOSE = "/customservice/kfsession/close"


@pytest.fixture
def account(emulator):
    return wired_account(emulator)


@pytest.fixture
def chinese_boss(client, boss):
    client.force_login(boss)
    return client


def test_a_transport_failure_explains_itself_without_the_url():
    error = WeChatTransportError("POST http://wechat.example/cgi-bin/message/custom/send?access_token=***: HTTP 502", http_status=502)

    assert error.explanation == "WeChat could not be reached (HTTP 502); try again in a minute."
    assert "http://" not in error.explanation
    assert "wechat.example" in error.errmsg  # the log and audit keep the detail


def test_the_transport_sentence_and_its_details_are_in_the_catalogue():
    assert TRANSPORT_SENTENCE in _TRANSPORT_DETAILS
    with translation.override("zh-hans"):
        assert sentence_translate("WeChat could not be reached (HTTP 502); try again in a minute.") == (
            "无法连接微信（HTTP 502），请一分钟后再试。"
        )
        assert sentence_translate("WeChat could not be reached (no answer in time); try again in a minute.") == (
            "无法连接微信（等待应答超时），请一分钟后再试。"
        )


def test_a_stored_sentence_with_a_stored_reason_inside_is_translated_whole():
    stored = (
        "WeChat could not be reached after several attempts: "
        "WeChat could not be reached (connection failed); try again in a minute. Send it again."
    )
    with translation.override("zh-hans"):
        assert sentence_translate(stored) == "多次尝试后仍无法连接微信：无法连接微信（连接失败），请一分钟后再试。 请重新发送。"
    with translation.override("en"):
        assert sentence_translate(stored) == stored


def test_a_close_during_an_outage_shows_one_chinese_sentence(chinese_boss, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    session = served_customer(account, alice, emulator)
    emulator.control("add_fault", kind="http", status=502, path_prefix=CLOSE, next=5)

    body = chinese_boss.post(reverse("sessions_app:close", args=[session.pk]), **htmx("action-panel")).content.decode()

    assert "无法连接微信（HTTP 502），请一分钟后再试。" in body
    assert "http://" not in body and "HTTP 502</" not in body
    assert KfSession.objects.get(pk=session.pk).state == KfSession.State.OPEN


def test_a_transfer_refused_by_wechat_shows_the_chinese_sentence_with_the_code(chinese_boss, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    carol = emulated_agent(account, emulator, "carol")
    session = served_customer(account, alice, emulator)
    emulator.control("add_fault", kind="errcode", errcode=45011, path_prefix=CLOSE, next=1)

    body = chinese_boss.post(
        reverse("sessions_app:transfer", args=[session.pk]), {"to_agent": carol.pk}, **htmx("action-panel")
    ).content.decode()

    assert "Too many calls" not in body
    assert "微信错误码 45011" in body


def test_a_send_that_failed_during_an_outage_is_shown_in_chinese(chinese_boss, account, emulator, boss):
    alice = emulated_agent(account, emulator, "alice")
    customer = served_customer(account, alice, emulator).customer
    outbound = outbound_queue(
        account=account, customer=customer, agent=alice, msgtype="text", payload={"content": "您好"}, actor=boss
    )
    # Nothing listens there: the request provably never left, so it is retried, and
    # given up when the retries are used up.
    account.api_base_url = "http://127.0.0.1:9"
    account.save(update_fields=["api_base_url"])
    with pytest.raises(WeChatTransportError) as raised:
        outbound_deliver(outbound_id=outbound.pk)
    outbound_give_up(outbound_id=outbound.pk, error=raised.value)

    stored = OutboundMessage.objects.get(pk=outbound.pk)
    assert stored.status == OutboundMessage.Status.FAILED
    assert "http://" not in stored.error and stored.error.startswith("WeChat could not be reached")
    body = chinese_boss.get(reverse("messaging:conversation", args=[customer.openid])).content.decode()
    assert "多次尝试后仍无法连接微信：无法连接微信（连接失败），请一分钟后再试。" in body
    assert "could not be reached" not in body


def test_a_send_whose_answer_was_a_502_is_shown_as_unknown_in_chinese(chinese_boss, account, emulator, boss):
    alice = emulated_agent(account, emulator, "alice")
    customer = served_customer(account, alice, emulator).customer
    outbound = outbound_queue(
        account=account, customer=customer, agent=alice, msgtype="text", payload={"content": "您好"}, actor=boss
    )
    emulator.control("add_fault", kind="http", status=502, path_prefix=SEND, next=1)
    outbound_deliver(outbound_id=outbound.pk)

    stored = OutboundMessage.objects.get(pk=outbound.pk)
    assert stored.status == OutboundMessage.Status.UNKNOWN
    assert "http://" not in stored.error
    body = chinese_boss.get(reverse("messaging:conversation", args=[customer.openid])).content.decode()
    assert "微信没有确认这条消息" in body
    assert "did not confirm" not in body


def test_the_sync_pages_last_error_is_shown_in_chinese(chinese_boss, account):
    SyncStateFactory(
        official_account=account, job="online", last_error_at=timezone.now(),
        last_error="WeChat could not be reached (HTTP 502); try again in a minute.",
    )
    SyncStateFactory(
        official_account=account, job="agents", last_error_at=timezone.now(),
        last_error="WeChat is busy right now. Try again in a few seconds.",
    )

    body = chinese_boss.get(reverse("accounts:sync")).content.decode()

    assert "无法连接微信（HTTP 502），请一分钟后再试。" in body
    assert "could not be reached" not in body and "WeChat is busy" not in body


def test_the_typing_refusal_for_45080_is_in_chinese(chinese_boss, account, emulator):
    alice = emulated_agent(account, emulator, "alice")
    session = served_customer(account, alice, emulator)
    Customer.objects.filter(pk=session.customer_id).update(last_interaction_at=timezone.now() - timedelta(minutes=2))

    body = chinese_boss.post(
        reverse("messaging:typing", args=[session.customer.openid]), {"command": "Typing"}, **htmx("typing")
    ).content.decode()

    assert "within 30 seconds" not in body
    with translation.override("zh-hans"):
        assert translation.gettext(
            "The typing indicator can only be shown within 30 seconds of the customer's last message."
        ) in body


def test_djangos_password_length_message_is_in_chinese(client):
    account = OfficialAccountFactory()
    client.force_login(supervisor(account))

    body = client.post(
        reverse("accounts:user_add"),
        {"username": "newbie", "password1": "kq7#", "password2": "kq7#", f"role_{account.pk}": "agent"},
    ).content.decode()

    assert "密码长度太短。密码必须包含至少 8 个字符。" in body
    assert "too short" not in body
