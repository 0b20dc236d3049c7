"""Live messages, the inbox and alerts, in a real browser.

WeChat is the emulator, which (as WeChat) does not push a customer's message written
during a session to the callback URL. A Celery worker thread on the Redis broker runs
the live tail, and a thread stands in for beat, queueing the tail's fan-out every
SYNC_TAIL_SECONDS. Screenshots go to docs/screenshots/.
"""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import AlertPreference
from messaging.tasks import sync_all_tail_task
from tests.e2e.support import NEEDS_BROKER, english, pushing_account, worker_running
from tests.factories import PASSWORD, agent_user, supervisor
from tests.sessions_app.test_views_support import (
    archive,
    emulated_agent,
    served_customer,
)

pytestmark = [pytest.mark.django_db(transaction=True), NEEDS_BROKER]

# Records every notification the page creates (the browser's own would show nowhere
# in a headless run), leaving the real Notification in place.
RECORD_NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  window.__notifications = [];
  function Recording(title, options) {
    window.__notifications.push({title: title, body: (options && options.body) || ""});
    return new Real(title, options);
  }
  Object.defineProperty(Recording, "permission", {get: () => Real.permission});
  Recording.requestPermission = (...args) => Real.requestPermission(...args);
  Recording.prototype = Real.prototype;
  window.Notification = Recording;
})();
"""


@pytest.fixture
def shop(emulator, live_server):
    return pushing_account(emulator, live_server)


@pytest.fixture
def tail_running():
    """A sync worker and a stand-in for beat queueing the tail's fan-out."""
    stop = threading.Event()

    def beat():
        while not stop.wait(settings.SYNC_TAIL_SECONDS):
            sync_all_tail_task.apply_async(expires=settings.SYNC_TAIL_SECONDS)

    ticker = threading.Thread(target=beat, daemon=True)
    try:
        with worker_running("sync", purge=True):
            ticker.start()
            yield
    finally:
        stop.set()
        ticker.join(timeout=10)


def test_a_customer_writes_in_a_session_and_the_agent_sees_it_live_with_an_alert(
    page, live_server, login, screenshot, shop, emulator, tail_running
):
    mei = emulated_agent(shop, emulator, "mei", nick="小美")
    session = served_customer(shop, mei, emulator, text="我想改一下收货地址", archived=False)
    openid = session.customer.openid  # their first message reached kfadmin by the push
    emulator.control("flush_callbacks")
    user = agent_user(shop, agent=mei, username="mei")
    AlertPreference.objects.create(user=user, title_count=True, sound=True, notify=True)
    page.context.grant_permissions(["notifications"], origin=live_server.url)
    page.add_init_script(RECORD_NOTIFICATIONS)
    english(page, live_server)
    login(user, PASSWORD)

    page.goto(f"{live_server.url}/conversations/{openid}/")
    expect(page.locator("#timeline")).to_contain_text("我想改一下收货地址")
    page.wait_for_selector("#alerts[data-alerts]", state="attached")  # the first alert poll answered
    title = page.title()
    assert not re.match(r"^\(\d+\)", title)
    page.evaluate("window.__notReloaded = true")

    # WeChat hands this to the agent's kf client and pushes nothing to kfadmin.
    wrote = emulator.control("customer_writes", appid=emulator.appid, openid=openid, text="新地址是幸福路88号，麻烦了")
    assert wrote["msgid"] is None and wrote["kf_account"] == mei.kf_account

    expect(page.locator("#timeline")).to_contain_text("新地址是幸福路88号", timeout=15_000)
    assert page.evaluate("window.__notReloaded") is True
    expect(page).to_have_title(re.compile(r"^\(1\) "), timeout=10_000)
    page.wait_for_function("() => window.__notifications.length > 0", timeout=10_000)
    notes = page.evaluate("window.__notifications")
    assert notes[0]["title"] == f"New message from {openid}"
    assert "新地址是幸福路88号" in notes[0]["body"]
    expect(page.locator("#records-as-of")).to_contain_text("read from WeChat every")
    expect(page.locator("#inbox")).to_contain_text("新地址是幸福路88号")
    screenshot("live-message")

    # Reading it (a click in the conversation) clears the count.
    page.locator("#timeline").click()
    expect(page).to_have_title(re.compile(r"^Conversation"), timeout=15_000)


def test_the_inbox_moves_between_conversations_and_keeps_a_draft_per_customer(
    page, live_server, login, screenshot, shop, emulator
):
    mei = emulated_agent(shop, emulator, "mei", nick="小美")
    lei = emulated_agent(shop, emulator, "lei", nick="小雷")
    now = timezone.now()
    # kfadmin's copy only: what the inbox reads.
    first = served_customer(shop, mei, text="发票开好了吗？", archived=False)
    second = served_customer(shop, lei, text="Do you ship to Hong Kong?", archived=False)
    third = served_customer(shop, mei, text="谢谢", archived=False)
    archive(shop, first.customer.openid, "发票开好了吗？", opercode=2003, worker=mei.kf_account, at=now - timedelta(minutes=6))
    archive(shop, second.customer.openid, "Do you ship to Hong Kong?", opercode=2003, worker=lei.kf_account,
            at=now - timedelta(minutes=1))
    archive(shop, third.customer.openid, "谢谢", opercode=2003, worker=mei.kf_account, at=now - timedelta(minutes=9))
    archive(shop, third.customer.openid, "不客气～", opercode=2002, worker=mei.kf_account, at=now - timedelta(minutes=8))
    english(page, live_server)
    login(supervisor(shop), PASSWORD)

    page.get_by_role("link", name="Inbox").click()
    inbox = page.locator("#inbox")
    items = inbox.locator("li.inbox-item")
    expect(items).to_have_count(3)
    # Who waited longest for an answer first; the answered one last.
    expect(items.nth(0)).to_contain_text(first.customer.openid)
    expect(items.nth(0)).to_contain_text("waiting 6 minutes for an answer")
    expect(items.nth(0)).to_have_class(re.compile(r"\bover\b"))  # past the 2-minute threshold
    expect(items.nth(1)).to_contain_text(second.customer.openid)
    expect(items.nth(2)).to_contain_text("answered")
    screenshot("inbox")

    page.evaluate("window.__notReloaded = true")
    items.nth(0).locator("a").click()
    expect(page).to_have_url(re.compile(f"/conversations/{first.customer.openid}/$"))
    expect(page.locator("#timeline")).to_contain_text("发票开好了吗？")
    expect(items.nth(0).locator("a")).to_have_attribute("aria-current", "page")
    composer = page.locator("#composer")
    composer.get_by_label("Message", exact=True).fill("稍等，我查一下开票进度")

    inbox.get_by_role("link", name=re.compile(second.customer.openid)).click()
    expect(page.locator("#timeline")).to_contain_text("Do you ship to Hong Kong?")
    expect(composer.get_by_label("Message", exact=True)).to_have_value("")

    page.go_back()
    expect(page).to_have_url(re.compile(f"/conversations/{first.customer.openid}/$"))
    inbox.get_by_role("link", name=re.compile(first.customer.openid)).click()
    expect(composer.get_by_label("Message", exact=True)).to_have_value("稍等，我查一下开票进度")
    assert page.evaluate("window.__notReloaded") is True  # no full page load all along

    # A real link all the same: opened afresh, the draft is still there.
    page.reload()
    expect(page.locator("#composer").get_by_label("Message", exact=True)).to_have_value("稍等，我查一下开票进度")

    # Logging out forgets it: the next person at this computer finds an empty composer.
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login/"))
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('kfadmin:draft:'))") == []
