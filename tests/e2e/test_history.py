"""History in a real browser: a Chinese search, opening the conversation at the hit,
exporting the filtered records. Screenshots go to docs/screenshots/."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import AuditEvent
from tests.e2e.support import english
from tests.factories import PASSWORD, AgentFactory, OfficialAccountFactory, agent_user, supervisor
from tests.sessions_app.test_views_support import archive

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def shop():
    account = OfficialAccountFactory(name="小鹿杂货铺", wechat_id="deer_shop")
    mei = AgentFactory(official_account=account, kf_account="mei@deer_shop", kf_nick="小美")
    lei = AgentFactory(official_account=account, kf_account="lei@deer_shop", kf_nick="小雷")
    start = timezone.now() - timedelta(days=2)
    dialogue = [
        ("o_deer_alice", 2003, mei, "你好，我买的杯子碎了"),
        ("o_deer_alice", 2002, mei, "非常抱歉！麻烦拍一下照片"),
        ("o_deer_alice", 2003, mei, "[image]"),
        ("o_deer_alice", 2003, mei, "可以退款吗？"),
        ("o_deer_alice", 2002, mei, "可以的，已为您提交退款，1-3个工作日到账"),
        ("o_deer_alice", 1004, mei, ""),
        ("o_deer_bob", 2003, lei, "Where is my parcel? Order 8812"),
        ("o_deer_bob", 2002, lei, "It left the warehouse yesterday, tracking SF1234567"),
        ("o_deer_carol", 2001, None, "退款多久到账？"),
        ("o_deer_carol", 2003, lei, "=HYPERLINK(\"http://evil.example\")"),
    ]
    for n, (openid, code, agent, text) in enumerate(dialogue):
        archive(account, openid, text, opercode=code, worker=agent.kf_account if agent else "", at=start + timedelta(minutes=7 * n))
    # Older chatter so the conversation opens in the middle of a longer history.
    for n in range(80):
        archive(account, "o_deer_alice", f"早前的消息 {n}", opercode=2003, worker=mei.kf_account,
                at=start - timedelta(hours=3) + timedelta(minutes=n))
    return account


def test_a_two_character_chinese_search_opens_the_conversation_at_the_hit(page, live_server, login, screenshot, shop):
    english(page, live_server)
    login(supervisor(shop), PASSWORD)

    page.get_by_role("link", name="History").click()
    page.get_by_label("Text").fill("退款")
    page.get_by_role("button", name="Search").click()

    results = page.locator("#history-results .result")
    expect(results).to_have_count(3)
    expect(results.first.locator("mark")).to_have_text("退款")
    expect(page).to_have_url(re.compile(r"/history/\?q=%E9%80%80%E6%AC%BE&"))  # the search is bookmarkable
    screenshot("history")

    results.filter(has_text="已为您提交").get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/conversations/o_deer_alice/\?at=\d+#r\d+$"))
    focus = page.locator("#timeline .focus")
    expect(focus).to_contain_text("已为您提交退款")
    expect(focus).to_be_in_viewport()
    expect(page.locator("#timeline")).to_contain_text("可以退款吗？")
    screenshot("history-open-conversation")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/history/?q=%E9%80%80%E6%AC%BE")
    screenshot("history-phone")


def test_the_filtered_history_downloads_as_csv(page, live_server, login, shop, tmp_path):
    english(page, live_server)
    login(supervisor(shop), PASSWORD)
    page.goto(f"{live_server.url}/history/?q=%E9%80%80%E6%AC%BE")

    with page.expect_download() as info:
        page.get_by_role("link", name="Export CSV").click()
    download = info.value

    assert download.suggested_filename.startswith("kfadmin-history-") and download.suggested_filename.endswith(".csv")
    path = tmp_path / "export.csv"
    download.save_as(path)
    data = path.read_bytes()
    assert data.startswith("\ufeff".encode())
    text = data.decode("utf-8-sig")
    assert text.count("\n") == 4  # header and the three matches
    assert "可以退款吗？" in text and "Where is my parcel" not in text
    assert AuditEvent.objects.get(action="history_export").target == "csv"


def test_the_csv_export_neutralises_formulas_for_spreadsheets(page, live_server, login, shop, tmp_path):
    english(page, live_server)
    login(supervisor(shop), PASSWORD)
    page.goto(f"{live_server.url}/history/?openid=o_deer_carol")
    with page.expect_download() as info:
        page.get_by_role("link", name="Export CSV").click()
    path = tmp_path / "carol.csv"
    info.value.save_as(path)
    assert "'=HYPERLINK" in path.read_text(encoding="utf-8-sig")


def test_an_agent_searches_only_their_own_conversations(page, live_server, login, shop):
    mei = shop.agents.get(kf_account="mei@deer_shop")
    english(page, live_server)
    login(agent_user(shop, agent=mei), PASSWORD)
    page.goto(f"{live_server.url}/history/")
    page.get_by_label("Text").fill("退款")
    page.get_by_label("Text").press("Enter")
    results = page.locator("#history-results .result")
    expect(results).to_have_count(2)
    expect(page.locator("#history-results")).not_to_contain_text("退款多久到账")


def test_the_transcript_prints_without_the_console_around_it(page, live_server, login, screenshot, shop):
    english(page, live_server)
    login(supervisor(shop), PASSWORD)
    page.goto(f"{live_server.url}/conversations/o_deer_alice/")
    page.get_by_role("link", name="Printable transcript").click()
    expect(page.locator(".transcript-table")).to_contain_text("已为您提交退款")
    page.emulate_media(media="print")
    expect(page.locator("header.topbar")).to_be_hidden()
    expect(page.get_by_role("button", name="Print")).to_be_hidden()
    screenshot("transcript-print")
