"""The agent's workspace in a real browser: a quick reply picked with `/` and sent
with Ctrl+Enter (a text one, and a library picture one), the keyboard's way to the message box, and the customer panel
(remark name, tags, notes) whose name then shows in the queue.

WeChat is the emulator; a Celery worker thread on the Redis broker sends.
Screenshots go to docs/screenshots/.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from messaging.media import library_sync
from messaging.models import OutboundMessage, QuickReplyUse
from messaging.services import quick_reply_create
from sessions_app.models import Customer
from tests.e2e.support import NEEDS_BROKER, english
from tests.factories import PASSWORD, agent_user, supervisor
from tests.sessions_app.test_views_support import (
    archive,
    emulated_agent,
    served_customer,
    wired_account,
)

pytestmark = [pytest.mark.django_db(transaction=True), NEEDS_BROKER]

SHIPPING = "您的包裹已从杭州仓发出，预计 2 天内送达。物流单号稍后发您，请留意短信。"


@pytest.fixture
def shop(emulator):
    return wired_account(emulator, name="小鹿杂货铺")


@pytest.fixture
def mei(shop, emulator):
    return emulated_agent(shop, emulator, "mei", nick="小美")


@pytest.fixture
def agent(shop, mei):
    return agent_user(shop, agent=mei, username="mei")


def test_an_agent_sends_a_quick_reply_with_slash_and_ctrl_enter(
    page, live_server, login, screenshot, shop, emulator, mei, agent, send_worker
):
    session = served_customer(shop, mei, emulator, text="我的快递发货了吗？", archived=False)
    archive(shop, session.customer.openid, "我的快递发货了吗？")
    boss = supervisor(shop)
    quick_reply_create(account=shop, owner=None, title="发货通知", text=SHIPPING, actor=boss)
    quick_reply_create(account=shop, owner=None, title="营业时间", text="我们每天 9:00–21:00 在线。", actor=boss)
    quick_reply_create(account=shop, owner=agent, title="问候", text="您好，我是小美，很高兴为您服务！", actor=agent)
    english(page, live_server)
    login(agent, PASSWORD)
    page.goto(f"{live_server.url}/conversations/{session.customer.openid}/")
    text = page.locator("#composer textarea[name=content]")
    expect(text).to_be_visible()

    # The message box is two Tab presses from the top of the page: the skip links.
    page.locator("body").focus()
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Skip to the message box"
    page.keyboard.press("Enter")
    expect(text).to_be_focused()

    # "/" opens the picker; typing filters it; Enter inserts the highlighted reply.
    page.keyboard.type("/")
    picker = page.locator("[data-quick-replies]")
    expect(picker).to_be_visible()
    expect(picker.locator("[role=option]")).to_have_count(3)
    page.keyboard.type("发货")
    expect(picker.locator("[role=option]")).to_have_count(1)
    expect(picker.locator("[role=option][aria-selected=true]")).to_contain_text("发货通知")
    page.set_viewport_size({"width": 1280, "height": 900})
    screenshot("quick-replies")
    page.keyboard.press("Enter")
    expect(picker).to_be_hidden()
    expect(text).to_have_value(SHIPPING)
    expect(text).to_be_focused()

    # Ctrl+Enter sends; the focus is back in the (new) message box, empty.
    page.keyboard.press("Control+Enter")
    sent = page.locator(".outbound").filter(has_text="预计 2 天内送达")
    expect(sent.locator(".send-status")).to_contain_text("sent")
    expect(page.locator("#composer textarea[name=content]")).to_be_focused()
    expect(page.locator("#composer textarea[name=content]")).to_have_value("")

    sends = [c.json for c in emulator.calls if c.path == "/cgi-bin/message/custom/send"]
    assert [(s["msgtype"], s["text"]["content"], s["customservice"]["kf_account"]) for s in sends] == [
        ("text", SHIPPING, mei.kf_account)
    ]
    assert OutboundMessage.objects.get().payload == {"content": SHIPPING}
    assert QuickReplyUse.objects.get(user=agent).reply.title == "发货通知"

    # The reply used is listed first next time; Escape closes the picker.
    page.keyboard.type("/")
    expect(picker.locator("[role=option]").first).to_contain_text("发货通知")
    page.keyboard.press("Escape")
    expect(picker).to_be_hidden()


def test_an_agent_sends_a_library_picture_quick_reply_picked_with_slash(
    page, live_server, login, screenshot, shop, emulator, mei, agent, send_worker
):
    session = served_customer(shop, mei, emulator, text="你们店在哪里？", archived=False)
    archive(shop, session.customer.openid, "你们店在哪里？")
    emulator.media("image", "img_map", name="门店地图.jpg")
    emulator.media("article", "art_refund", title="如何申请退换货")
    library_sync(account_id=shop.pk)
    boss = supervisor(shop)
    quick_reply_create(account=shop, owner=None, title="门店地图", msgtype="image", library_ident="img_map", actor=boss)
    quick_reply_create(account=shop, owner=None, title="退货说明", msgtype="mpnewsarticle", library_ident="art_refund", actor=boss)
    quick_reply_create(account=shop, owner=None, title="营业时间", text="我们每天 9:00–21:00 在线。", actor=boss)
    english(page, live_server)
    login(agent, PASSWORD)
    page.goto(f"{live_server.url}/conversations/{session.customer.openid}/")
    text = page.locator("#composer textarea[name=content]")
    text.click()

    # The picker says what each reply sends: the picture's kind, title and thumbnail.
    page.keyboard.type("/门店")
    picker = page.locator("[data-quick-replies]")
    option = picker.locator("[role=option]")
    expect(option).to_have_count(1)
    expect(option).to_contain_text("Image")
    expect(option).to_contain_text("门店地图.jpg")
    expect(option.locator("img.qr-thumb")).to_be_visible()
    page.set_viewport_size({"width": 1280, "height": 900})
    screenshot("quick-replies-media")

    # Enter switches the composer to Image with the library item chosen, focus on Send.
    page.keyboard.press("Enter")
    composer = page.locator("#composer")
    expect(composer.locator("input[name=msgtype]")).to_have_value("image")
    expect(composer.locator("select[name=library]")).to_have_value("img_map")
    expect(composer.locator("button.primary[type=submit]")).to_be_focused()

    # One Ctrl+Enter sends it by its media_id; the use is counted.
    page.keyboard.press("Control+Enter")
    expect(page.locator(".outbound .send-status").first).to_contain_text("sent")
    sends = [c.json for c in emulator.calls if c.path == "/cgi-bin/message/custom/send"]
    assert [(s["msgtype"], s["image"]["media_id"]) for s in sends] == [("image", "img_map")]
    assert OutboundMessage.objects.get().payload == {"media_id": "img_map"}
    assert QuickReplyUse.objects.get(user=agent).reply.title == "门店地图"


def test_an_agent_names_the_customer_and_sees_the_name_in_the_queue(
    page, live_server, login, screenshot, shop, emulator, mei, agent
):
    session = served_customer(shop, mei, emulator, text="上次买的杯子碎了", archived=False)
    openid = session.customer.openid
    archive(shop, openid, "上次买的杯子碎了")
    archive(shop, openid, "很抱歉！请拍张照片给我们", opercode=2002, worker=mei.kf_account)
    english(page, live_server)
    login(agent, PASSWORD)
    page.goto(f"{live_server.url}/conversations/{openid}/")

    panel = page.locator("#customer-panel")
    expect(panel).to_contain_text("1 from the customer · 1 from agents")
    expect(panel).to_contain_text("小美")  # the session, with its agent
    panel.get_by_text("Edit name and tags").click()
    panel.get_by_label("Remark name").fill("王女士（杯子）")
    panel.get_by_label("Tags").fill("VIP, 破损补发")
    panel.get_by_role("button", name="Save").click()
    expect(page.locator("#messages")).to_contain_text("The customer's name and tags are saved.")
    expect(panel.locator(".customer-who")).to_contain_text("王女士（杯子）")
    expect(panel.locator(".customer-who")).to_contain_text(openid)
    expect(panel.locator(".tag")).to_have_text(["VIP", "破损补发"])
    expect(page.locator("#conversation-customer-name")).to_contain_text("王女士（杯子）")  # the heading too

    panel.get_by_label("Note").fill("已补发新杯子，顺丰 SF123")
    panel.get_by_role("button", name="Add note").click()
    expect(panel.locator(".notes")).to_contain_text("已补发新杯子")
    expect(panel.locator(".notes")).to_contain_text("mei")

    panel.get_by_label("Find in this conversation").fill("照片")
    panel.get_by_role("button", name="Find").click()
    expect(panel.locator(".found")).to_contain_text("请拍张照片给我们")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot("customer-panel")

    # A note written by mistake: removed after a confirmation dialog; Cancel keeps it.
    panel.get_by_label("Note").fill("电话 13800000000（写错了）")
    panel.get_by_role("button", name="Add note").click()
    mistake = panel.locator(".note-item", has_text="写错了")
    mistake.get_by_role("link", name="Remove…").click()
    dialog = page.locator("dialog[open]")
    expect(dialog).to_contain_text("Remove this note?")
    expect(dialog).to_contain_text("13800000000")
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.locator("dialog[open]")).to_have_count(0)
    expect(mistake).to_be_visible()
    mistake.get_by_role("link", name="Remove…").click()
    page.locator("dialog[open]").get_by_role("button", name="Remove the note").click()
    expect(page.locator("#messages")).to_contain_text("The note is removed.")
    expect(page.locator("dialog[open]")).to_have_count(0)
    expect(panel.locator(".notes")).not_to_contain_text("写错了")
    expect(panel.locator(".notes")).to_contain_text("已补发新杯子")

    assert Customer.objects.get(pk=session.customer_id).remark_name == "王女士（杯子）"

    page.get_by_role("link", name="Queue & sessions").click()
    row = page.locator(f"#session-{session.pk}")
    expect(row).to_contain_text("王女士（杯子）")
    expect(row).to_contain_text(openid)
