"""What users saw wrong in the pages, checked in a real browser: history on a phone,
its field errors and count; flash messages replaced by the next action; the agent
heading after a rename; pasted names longer than the limit refused, not cut."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Agent
from tests.e2e.support import english
from tests.factories import PASSWORD, AgentFactory, OfficialAccountFactory, supervisor
from tests.sessions_app.test_views_support import archive

pytestmark = pytest.mark.django_db(transaction=True)

# Screenshots of this file are for looking at while working, not the README's set.
SHOTS = Path(os.environ.get("KFADMIN_E2E_SHOTS", "var/e2e-shots"))


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def shop():
    account = OfficialAccountFactory(name="小鹿杂货铺", wechat_id="deer_shop")
    mei = AgentFactory(official_account=account, kf_account="mei@deer_shop", kf_nick="小美")
    # A long agent name makes the agent <select> as wide as its longest option.
    AgentFactory(official_account=account, kf_account="aftersales9@deer_shop_flagship_store_official", kf_nick="售后专员（退款、换货与投诉）")
    start = timezone.now() - timedelta(days=2)
    for n in range(29):
        archive(account, f"oDeer{n % 3}x7Kq2LmN9pQrStUvWxYz01", f"退款进度怎么样了？订单号 SF{1234567890 + n}",
                opercode=2003, worker=mei.kf_account, at=start + timedelta(minutes=n))
    # What phones choke on: a long link and a long run of characters without a break.
    archive(account, "oDeer0x7Kq2LmN9pQrStUvWxYz01",
            "退款链接 https://shop.example/after-sales/refund/apply?order=SF1234567890&token=abcdefghijklmnopqrstuvwxyz0123456789",
            opercode=2002, worker=mei.kf_account, at=start + timedelta(minutes=40))
    return account


def page_overflow(page) -> int:
    """How many CSS pixels the page is wider than the viewport (0: no sideways scroll)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def test_the_history_page_fits_a_phone_and_says_how_many_records_match(page, live_server, login, shop):
    page.set_viewport_size({"width": 390, "height": 844})
    login(supervisor(shop), PASSWORD)

    page.goto(f"{live_server.url}/history/")
    page.get_by_label("文本").fill("退款")
    page.get_by_role("button", name="搜索").click()

    expect(page).to_have_url(re.compile(r"q=%E9%80%80%E6%AC%BE"))
    expect(page.locator("#results-title")).to_have_text("结果")
    expect(page.locator("#history-results .result-count")).to_have_text("30 条记录")
    shot(page, "history-phone-390")
    assert page_overflow(page) == 0


def test_an_end_date_before_the_start_is_shown_beside_the_date_and_cleared_when_fixed(page, live_server, login, shop):
    english(page, live_server)
    login(supervisor(shop), PASSWORD)
    page.goto(f"{live_server.url}/history/")

    page.fill("#id_since", "2025-03-02")
    page.fill("#id_until", "2025-03-01")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#filter-until-errors")).to_contain_text("The end date is before the start date.")
    shot(page, "history-date-error")

    page.fill("#id_until", "2025-03-03")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#history-results .result-count")).to_be_visible()
    expect(page.locator("#filter-until-errors")).to_be_empty()


def test_a_new_error_replaces_the_old_success_message(page, live_server, login, screenshot, kf_account_row, emulator):
    english(page, live_server)
    login(supervisor(kf_account_row), PASSWORD)
    page.goto(f"{live_server.url}/agents/")

    page.fill("#id_kf_prefix", "mei")
    page.fill("#id_nickname", "小美")
    page.click("#agent-add-form button[type=submit]")
    expect(page.locator("#messages")).to_contain_text(f"Added mei@{emulator.wechat_id}")

    page.fill("#id_kf_prefix", "mei")
    page.fill("#id_nickname", "小美")
    page.click("#agent-add-form button[type=submit]")
    expect(page.locator("#agent-add-form .errorlist")).to_contain_text("already exists")
    expect(page.locator("#messages")).not_to_contain_text("Added")
    shot(page, "agents-error-after-success")


def test_a_pasted_prefix_or_nickname_too_long_is_refused_not_cut(page, live_server, login, kf_account_row, emulator):
    english(page, live_server)
    login(supervisor(kf_account_row), PASSWORD)
    page.goto(f"{live_server.url}/agents/")

    page.focus("#id_kf_prefix")
    page.keyboard.insert_text("elevenchars")  # 11: a paste, which maxlength would cut to 10
    page.focus("#id_nickname")
    page.keyboard.insert_text("十七个字的昵称十七个字的昵称十七个")  # 17
    expect(page.locator("#id_kf_prefix")).to_have_value("elevenchars")
    page.click("#agent-add-form button[type=submit]")

    expect(page.locator("#agent-add-form .errorlist").first).to_be_visible()
    expect(page.locator("#agent-add-form")).to_contain_text("at most 10")
    expect(page.locator("#agent-add-form")).to_contain_text("16")
    shot(page, "agents-too-long")
    assert not Agent.objects.exists()
    assert not [c for c in emulator.calls if c.path.endswith("/kfaccount/add")]


def test_the_agent_heading_follows_a_rename(page, live_server, login, kf_account_row, emulator):
    english(page, live_server)
    kf_account = emulator.bound_agent("mei", online=True, nickname="小美")
    agent = AgentFactory(official_account=kf_account_row, kf_account=kf_account, kf_nick="小美")
    login(supervisor(kf_account_row), PASSWORD)
    page.goto(f"{live_server.url}/agents/{agent.pk}/")
    expect(page.locator("#agent-head h1")).to_contain_text("小美")

    page.fill("#id_nickname", "美美")
    page.click("#agent-nickname-form button[type=submit]")

    expect(page.locator("#messages")).to_contain_text("Nickname saved at WeChat.")
    expect(page.locator("#agent-head h1")).to_contain_text("美美")
    expect(page.locator("#agent-head h1")).not_to_contain_text("小美")
    expect(page.locator("h1")).to_have_count(1)
    shot(page, "agent-renamed")


@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_supervisors_header_fits_one_line_and_folds_the_admin_pages(page, live_server, login, shop, language):
    page.set_viewport_size({"width": 1280, "height": 800})
    page.context.add_cookies([{"name": "django_language", "value": language, "url": live_server.url}])
    login(supervisor(shop), PASSWORD)

    page.goto(f"{live_server.url}/")
    nav = page.locator("nav.mainnav")
    links = nav.locator(":scope > a")
    tops = {round(box["y"]) for box in (links.nth(i).bounding_box() for i in range(links.count()))}
    assert len(tops) == 1, f"the main links sit on {len(tops)} lines"
    menu = nav.locator("details[data-navmore]")
    audit = menu.locator("a[href='/audit/']")
    expect(audit).to_be_hidden()

    menu.locator("summary").click()
    expect(audit).to_be_visible()
    page.keyboard.press("Escape")
    expect(audit).to_be_hidden()
    expect(menu.locator("summary")).to_be_focused()

    menu.locator("summary").click()
    page.mouse.click(640, 700)  # a click elsewhere closes it
    expect(audit).to_be_hidden()

    menu.locator("summary").click()
    audit.click()
    expect(page).to_have_url(re.compile(r"/audit/$"))
    expect(page.locator("nav.mainnav details[data-navmore] summary")).to_have_class(re.compile(r"\bcurrent\b"))
