"""The queue, the session actions and sending, in a real browser.

WeChat is the emulator: the customer writes through its control API, it pushes the
message to kfadmin's callback URL, the queue sync (what beat runs every few seconds)
picks the customer up, and a Celery worker thread on the Redis broker sends what the
supervisor types. Screenshots go to docs/screenshots/.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from messaging.models import MediaFile, OutboundMessage
from sessions_app.models import KfSession
from sessions_app.sync import queue_sync
from tests.e2e.support import NEEDS_BROKER, csp_recorder, english, pushing_account
from tests.factories import PASSWORD, auditor, supervisor
from tests.sessions_app.test_views_support import (
    archive,
    emulated_agent,
    served_customer,
)
from tests.wechat import media_samples as samples

pytestmark = [pytest.mark.django_db(transaction=True), NEEDS_BROKER]


@pytest.fixture
def shop(emulator, live_server):
    return pushing_account(emulator, live_server, agent_capacity=4)


def customer_writes(emulator, shop, text: str) -> str:
    """A customer writes to the official account; WeChat pushes it to kfadmin and the
    queue sync (beat's job) sees them waiting."""
    openid = emulator.control("customer_writes", appid=emulator.appid, text=text)["openid"]
    emulator.control("flush_callbacks")
    queue_sync(account_id=shop.pk)
    return openid


def test_a_customer_writes_is_assigned_gets_a_text_and_an_image_and_the_session_is_closed(
    page, live_server, login, screenshot, shop, emulator, send_worker
):
    mei = emulated_agent(shop, emulator, "mei", nick="小美")
    lei = emulated_agent(shop, emulator, "lei", nick="小雷")
    bob = emulated_agent(shop, emulator, "bob", nick="Bob", online=False)
    served_customer(shop, lei, emulator, text="发票什么时候开？", archived=False)
    english(page, live_server)
    csp_violations = csp_recorder(page)
    login(supervisor(shop), PASSWORD)

    page.get_by_role("link", name="Queue & sessions").click()
    waiting = page.locator("#queue-waiting")
    expect(waiting).to_contain_text("Nobody is waiting")

    # The customer writes; the page shows them within one refresh, without a reload.
    openid = customer_writes(emulator, shop, "你好，我的订单还没到，能帮我查一下吗？")
    other = customer_writes(emulator, shop, "Do you ship to Hong Kong?")
    row = waiting.locator("li", has_text=openid)
    # Polled every 5 s: allow a few refreshes on a busy machine.
    expect(row).to_contain_text("你好，我的订单还没到", timeout=20_000)
    expect(waiting.locator("li").first).to_contain_text(openid)  # arrival order
    expect(waiting).to_contain_text(other)
    screenshot("queue")

    # Keyboard: the focused link keeps focus across a refresh of the list.
    session_row = KfSession.objects.get(customer__openid=openid)
    link_id = f"waiting-assign-{session_row.pk}"
    page.locator(f"#{link_id}").focus()
    page.evaluate("""() => {
        window.refreshed = false;
        document.body.addEventListener("htmx:afterSettle", (event) => {
            if (event.detail.target.id === "queue-waiting") window.refreshed = true;
        });
    }""")
    # Another customer writes: the next poll replaces the list (an unchanged one is a 204).
    customer_writes(emulator, shop, "还有人在吗？")
    page.wait_for_function("() => window.refreshed")
    assert page.evaluate("document.activeElement.id") == link_id

    # Assign to an offline agent: kfadmin warns before WeChat would refuse.
    page.keyboard.press("Enter")
    panel = page.locator("#action-panel")
    expect(panel).to_contain_text("Assign a customer")
    panel.get_by_label("Agent").select_option(str(bob.pk))
    panel.get_by_role("button", name="Assign", exact=True).click()
    expect(panel).to_contain_text("Bob is offline")
    screenshot("queue-assign-warning")
    panel.get_by_role("link", name="Choose again").click()
    panel.get_by_label("Agent").select_option(str(mei.pk))
    panel.get_by_role("button", name="Assign", exact=True).click()
    expect(page.locator("#messages")).to_contain_text(f"{openid} is now with 小美")
    expect(page.locator(f"#agent-{mei.pk}")).to_contain_text(openid)
    expect(waiting).not_to_contain_text(openid)
    assert KfSession.objects.get(customer__openid=openid, state="open").agent == mei
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot("queue-phone")
    page.set_viewport_size({"width": 1280, "height": 800})

    # Open the conversation and send a text, then an image.
    page.locator(f"#agent-{mei.pk}").get_by_role("link", name=openid).click()
    expect(page.locator("#reply-window")).to_contain_text("5 of 5 sends left")
    composer = page.locator("#composer")
    expect(composer.get_by_label("Send as")).to_have_value(str(mei.pk))
    composer.get_by_label("Message", exact=True).fill("您好，我是小美，马上帮您查询物流～")
    composer.get_by_role("button", name="Send").click()
    first = page.locator(".outbound").filter(has_text="马上帮您查询物流")
    expect(first.locator(".send-status")).to_contain_text("sent")

    composer.get_by_role("link", name="Image").click()
    expect(composer.get_by_label("Picture")).to_be_visible()
    composer.get_by_label("Picture").set_input_files(
        {"name": "parcel.png", "mimeType": "image/png", "buffer": samples.png(120, 80)}
    )
    composer.get_by_role("button", name="Send").click()
    second = page.locator(".outbound").filter(has=page.locator("img.media-thumb"))
    expect(second.locator(".send-status")).to_contain_text("sent")
    expect(page.locator("#reply-window")).to_contain_text("3 of 5 sends left")

    sends = [c.json for c in emulator.calls if c.path == "/cgi-bin/message/custom/send"]
    assert [(s["msgtype"], s["customservice"]["kf_account"]) for s in sends] == [("text", mei.kf_account), ("image", mei.kf_account)]
    assert sends[1]["image"] == {"media_id": MediaFile.objects.get().media_id}
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {"sent"}
    assert csp_violations() == []  # the sends' swaps included
    screenshot("conversation")

    # Close, after confirming.
    page.locator("#conversation-session").get_by_role("link", name="Close…").click()
    expect(page.locator("#action-panel")).to_contain_text("Close this session?")
    page.locator("#action-panel").get_by_role("button", name="Close session").click()
    expect(page.locator("#messages")).to_contain_text("is closed")
    expect(page.locator("#conversation-session")).to_contain_text("no session")
    assert emulator.state.customer(appid=emulator.appid, openid=openid)["kf_account"] == ""

    page.set_viewport_size({"width": 390, "height": 844})
    screenshot("conversation-phone")


def test_a_refused_send_shows_wechats_reason_in_plain_words(page, live_server, login, screenshot, shop, emulator, send_worker):
    mei = emulated_agent(shop, emulator, "mei", nick="小美")
    session = served_customer(shop, mei, emulator, text="还在吗", archived=False)
    emulator.control("add_fault", kind="errcode", errcode=45047, path_prefix="/cgi-bin/message/custom/send", next=1)
    english(page, live_server)
    login(supervisor(shop), PASSWORD)

    page.goto(f"{live_server.url}/conversations/{session.customer.openid}/")
    page.locator("#composer").get_by_label("Message", exact=True).fill("在的！")
    page.locator("#composer").get_by_role("button", name="Send").click()
    failed = page.locator(".outbound").filter(has_text="在的！")
    expect(failed.locator(".send-status")).to_contain_text("failed")
    expect(failed).to_contain_text("as many messages as WeChat allows")


def test_an_auditor_reads_the_conversation_but_cannot_send(page, live_server, login, screenshot, shop, emulator):
    mei = emulated_agent(shop, emulator, "mei", nick="小美")
    session = served_customer(shop, mei, emulator, text="我想退货", archived=False)
    archive(shop, session.customer.openid, "好的，已为您登记退货", opercode=2002, worker=mei.kf_account)
    english(page, live_server)
    login(auditor(shop), PASSWORD)

    expect(page.locator("nav.mainnav")).not_to_contain_text("Queue & sessions")
    page.goto(f"{live_server.url}/conversations/{session.customer.openid}/")
    expect(page.locator("#timeline")).to_contain_text("已为您登记退货")
    expect(page.locator("#composer")).to_have_count(0)
    expect(page.get_by_role("link", name="Close…")).to_have_count(0)
    screenshot("conversation-auditor")

    # Going around the page does not help: the endpoints check the role themselves.
    token = page.evaluate("JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken']")
    refused = page.request.post(
        f"{live_server.url}/conversations/{session.customer.openid}/send/",
        form={"msgtype": "text", "as_agent": str(mei.pk), "content": "hi"},
        headers={"X-CSRFToken": token, "HX-Request": "true", "Referer": page.url},
    )
    assert refused.status == 403
    assert "does not allow this page or action" in refused.text()
    assert page.request.get(f"{live_server.url}/queue/").status == 403
    assert not OutboundMessage.objects.exists()


def test_the_menu_composer_builds_its_options_row_by_row(page, live_server, login, screenshot, shop, emulator, send_worker):
    mei = emulated_agent(shop, emulator, "mei", nick="小美")
    session = served_customer(shop, mei, emulator, text="问题解决了", archived=False)
    english(page, live_server)
    login(supervisor(shop), PASSWORD)
    page.goto(f"{live_server.url}/conversations/{session.customer.openid}/")

    composer = page.locator("#composer")
    composer.get_by_role("link", name="Menu").click()
    composer.get_by_label("Text above the options").fill("您对本次服务满意吗？")
    composer.get_by_label("Option text 1").fill("满意")
    composer.get_by_label("Option text 2").fill("一般")
    composer.get_by_role("button", name="Add an option").click()
    composer.get_by_label("Option text 3").fill("不满意")
    expect(composer.get_by_label("Option text 1")).to_have_value("满意")  # typed text survives
    composer.get_by_role("button", name="Remove option 2").click()
    expect(composer.get_by_label("Option text 2")).to_have_value("不满意")
    screenshot("composer-menu")
    composer.get_by_role("button", name="Send").click()
    expect(page.locator(".outbound").filter(has_text="您对本次服务满意吗？").locator(".send-status")).to_contain_text("sent")

    sent = [c.json for c in emulator.calls if c.path == "/cgi-bin/message/custom/send"][-1]
    assert sent["msgmenu"] == {
        "head_content": "您对本次服务满意吗？",
        "list": [{"id": "101", "content": "满意"}, {"id": "103", "content": "不满意"}],
        "tail_content": "",
    }


def test_a_late_answer_never_rolls_the_reply_window_back(page, live_server, login, shop, emulator):
    mei = emulated_agent(shop, emulator, "mei", nick="小美")
    session = served_customer(shop, mei, emulator, text="你好", archived=False)
    english(page, live_server)
    login(supervisor(shop), PASSWORD)
    conversation = f"{live_server.url}/conversations/{session.customer.openid}/"
    page.goto(conversation)
    box = page.locator("#conversation-session")
    expect(box).to_contain_text("5 of 5 sends left")
    shown_at = float(box.get_attribute("data-as-of"))

    def answer(stamp: float, text: str):
        def fulfil(route):
            if route.request.headers.get("hx-target") != "conversation-session":
                return route.continue_()
            # Without the poll's token: rendered, as if something had changed.
            html = route.fetch(url=conversation).text()
            html = re.sub(r'data-as-of="[0-9.]+"', f'data-as-of="{stamp:.6f}"', html, count=1)
            route.fulfill(body=html.replace("5 of 5 sends left", text), content_type="text/html; charset=utf-8")
        return fulfil

    # The box polls its URL with the token of what it shows (?v=).
    polled = re.compile(re.escape(conversation) + r"(\?.*)?$")

    # An answer computed before the one on screen arrives late: it is dropped.
    page.route(polled, answer(shown_at - 1, "STALE"))
    with page.expect_response(polled):
        page.evaluate("htmx.trigger(document.body, 'sessionsChanged')")
    expect(box).to_contain_text("5 of 5 sends left")
    expect(box).not_to_contain_text("STALE")
    page.unroute(polled)

    # A fresher one replaces it.
    page.route(polled, answer(shown_at + 1, "FRESH"))
    with page.expect_response(polled):
        page.evaluate("htmx.trigger(document.body, 'sessionsChanged')")
    expect(box).to_contain_text("FRESH")
