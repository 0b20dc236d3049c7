"""The reply-window box and the composer's footnote, in a real browser, with the budget
learned from WeChat's history and the window closed by the customer's unfollow.

WeChat is the emulator: the customer writes through its control API and it pushes the
message (and later the unfollow) to kfadmin's callback URL; an agent replies from
another tool (straight through the API, so only the history sync tells kfadmin).
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from accounts.clients import wechat_client_for
from messaging.sync import history_sync
from tests.factories import PASSWORD, supervisor
from tests.sessions_app.test_views_support import emulated_agent, served_customer, wired_account

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop(emulator, live_server):
    account = wired_account(
        emulator,
        name="小鹿杂货铺",
        original_id=emulator.original_id,
        callback_token=emulator.callback_token,
        encoding_aes_key=emulator.encoding_aes_key,
    )
    emulator.control("set_callback", appid=emulator.appid, url=f"{live_server.url}/wechat/callback/{emulator.appid}/")
    return account


def test_the_reply_window_shows_wechats_budget_and_tells_used_up_from_closed(page, live_server, login, shop, emulator):
    mei = emulated_agent(shop, emulator, "mei", nick="小美")
    session = served_customer(shop, mei, emulator, text="我的退款到账了吗？", archived=False)
    openid = session.customer.openid
    client = wechat_client_for(shop)
    for text in ("您好", "正在查询", "请稍候", "已到账"):  # from another tool: kfadmin never saw them
        client.send_message(openid, "text", {"content": text}, kf_account=mei.kf_account)
    history_sync(account_id=shop.pk)
    login(supervisor(shop), PASSWORD)

    page.goto(f"{live_server.url}/conversations/{openid}/")
    box = page.locator("#reply-window")
    expect(box).to_contain_text("还可发送 1/5 条")  # the browser asks for Chinese
    client.send_message(openid, "text", {"content": "最后一条"}, kf_account=mei.kf_account)
    history_sync(account_id=shop.pk)
    page.reload()
    expect(box).to_contain_text("已无可发送条数：客户再次发消息前，微信不允许再发送")
    expect(page.locator("#composer")).to_contain_text("本窗口期内已无可发送条数；客户再次发消息后会重新开放。")

    emulator.control("customer_event", openid=openid, event="unfollow")
    emulator.control("flush_callbacks")
    page.reload()
    expect(box).to_contain_text("已关闭：客户已取消关注")
    expect(box).not_to_contain_text("已无可发送条数")
    expect(page.locator("#composer")).to_contain_text("回复窗口已关闭；微信会拒绝这条消息。")


def test_a_click_after_the_budget_is_used_shows_three_sends_for_its_minute_only(page, live_server, login, shop, emulator):
    mei = emulated_agent(shop, emulator, "mei", nick="小美")
    session = served_customer(shop, mei, emulator, text="还在吗？", archived=False)
    openid = session.customer.openid
    client = wechat_client_for(shop)
    for n in range(5):  # from another tool: only the history sync tells kfadmin
        client.send_message(openid, "text", {"content": f"回复{n}"}, kf_account=mei.kf_account)
    history_sync(account_id=shop.pk)
    emulator.control("customer_event", openid=openid, event="menu_click")
    emulator.control("flush_callbacks")
    login(supervisor(shop), PASSWORD)

    page.goto(f"{live_server.url}/conversations/{openid}/")
    box = page.locator("#reply-window")
    expect(box).to_contain_text("还可发送 3/3 条，限")
    expect(box).to_contain_text("（菜单点击、关注或扫码）")
    expect(box).to_contain_text(re.compile(r"之后客户再次发消息前不可再发送（窗口将在 1\s*日，23\s*小时后关闭）"))
    expect(box).not_to_contain_text("/5 条")
