"""A send whose outcome is unknown, settled by WeChat's history, and "Send again" on
one that was not delivered, in a real browser with a Celery worker thread on the
Redis broker and the emulator's faults as WeChat."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from messaging.delivery import outbound_unknown_settle
from messaging.models import OutboundMessage
from messaging.sync import history_sync
from tests.e2e.support import NEEDS_BROKER, english
from tests.factories import PASSWORD, supervisor
from tests.sessions_app.test_views_support import emulated_agent, served_customer, wired_account

pytestmark = [pytest.mark.django_db(transaction=True), NEEDS_BROKER]

SEND = "/cgi-bin/message/custom/send"


def test_an_unknown_send_is_settled_by_the_history_and_a_lost_one_is_sent_again(
    page, live_server, login, emulator, send_worker, settings
):
    settings.WECHAT_TIMEOUT = 1
    shop = wired_account(emulator, name="小鹿杂货铺")
    mei = emulated_agent(shop, emulator, "mei", nick="小美")
    session = served_customer(shop, mei, emulator, text="到哪了？", archived=False)
    english(page, live_server)
    login(supervisor(shop), PASSWORD)
    page.goto(f"{live_server.url}/conversations/{session.customer.openid}/")
    composer = page.locator("#composer")

    # WeChat takes the message but answers after kfadmin stopped waiting.
    emulator.control("add_fault", kind="slow", delay=2, path_prefix=SEND, next=1)
    composer.get_by_label("Message", exact=True).fill("已经发货了")
    composer.get_by_role("button", name="Send").click()
    slow = page.locator(".outbound").filter(has_text="已经发货了")
    expect(slow.locator(".send-status")).to_contain_text("outcome unknown", timeout=20_000)
    expect(slow.locator(".send-status")).to_contain_text("check WeChat's history")
    expect(slow.get_by_role("button", name="Send again")).to_have_count(0)

    history_sync(account_id=shop.pk)
    # The timeline refreshes itself (every 10 s) with WeChat's copy: now sent.
    expect(slow.locator(".send-status")).to_contain_text("sent", timeout=25_000)
    expect(slow.locator(".send-status")).not_to_contain_text("unknown")

    # WeChat never takes this one (the connection drops before it does).
    emulator.control("add_fault", kind="drop", path_prefix=SEND, next=1)
    composer.get_by_label("Message", exact=True).fill("请查收")
    composer.get_by_role("button", name="Send").click()
    lost = page.locator(".outbound").filter(has_text="请查收")
    expect(lost.locator(".send-status")).to_contain_text("outcome unknown", timeout=20_000)
    first = OutboundMessage.objects.get(payload={"content": "请查收"})
    # The history is later stored well past it, with no copy: not delivered.
    outbound_unknown_settle(account=shop, stored_until=first.attempted_at + timedelta(minutes=15))
    page.reload()
    expect(lost.locator(".send-status")).to_contain_text("not delivered")

    page.once("dialog", lambda dialog: dialog.accept())
    lost.get_by_role("button", name="Send again").click()
    resent = OutboundMessage.objects.filter(resend_of=first)
    again = page.locator(".outbound.status-sent").filter(has_text="请查收")
    expect(again).to_have_count(1, timeout=20_000)
    assert resent.count() == 1 and resent.get().status == "sent"
    received = emulator.control("records", appid=emulator.appid, openid=session.customer.openid, opercode=2002)
    assert [r["text"] for r in received["records"]] == ["已经发货了", "请查收"]
