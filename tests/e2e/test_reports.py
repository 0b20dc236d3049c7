"""Reports in a real browser, over the demo's history as the history sync stores it:
the last 7 days' figures and charts, a CSV download, an agent's presence timeline,
a phone's width, and not one CSP violation. Screenshots go to docs/screenshots/."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Agent, AgentPresence
from accounts.sync import agents_sync, online_sync
from kfadmin.emulator import DEMO_APPID, DEMO_NAME, DEMO_SECRET, DEMO_WECHAT_ID
from messaging.sync import history_backfill
from reports.models import SessionFact
from reports.services import rollups_catch_up
from tests.e2e.support import english
from tests.factories import PASSWORD, OfficialAccountFactory, supervisor

pytestmark = pytest.mark.django_db(transaction=True)

RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


@pytest.fixture
def demo(emulator):
    """The demo shop, its agents and 8 days of its history synced from the emulator."""
    emulator.state.seed_demo(seed=1)
    account = OfficialAccountFactory(
        appid=DEMO_APPID, secret=DEMO_SECRET, wechat_id=DEMO_WECHAT_ID, name=DEMO_NAME,
        api_base_url=emulator.base_url,
    )
    agents_sync(account_id=account.pk)
    online_sync(account_id=account.pk)
    history_backfill(account_id=account.pk, days=8)
    rollups_catch_up(account_id=account.pk)  # what the sync queue does after each page
    # A week of the online sync's presence rows for one agent: on duty 09:00-18:00.
    mei = Agent.objects.get(official_account=account, kf_account=f"xiaomei@{DEMO_WECHAT_ID}")
    today = timezone.now().astimezone(account.zone).date()
    for back in range(7, 0, -1):
        day = today - timedelta(days=back)
        for hour, status, load in ((9, 1, 0), (10, 1, 2), (13, 1, 1), (18, 0, 0)):
            AgentPresence.objects.create(
                agent=mei, at=datetime.combine(day, datetime.min.time(), tzinfo=account.zone) + timedelta(hours=hour),
                online_status=status, accepted_case=load,
            )
    return account


def test_a_supervisor_reads_the_last_7_days_downloads_a_csv_and_opens_a_timeline(
    page, live_server, login, screenshot, demo, tmp_path
):
    assert SessionFact.objects.filter(official_account=demo).count() > 20  # the sync kept the rollups
    english(page, live_server)
    page.add_init_script(RECORD_VIOLATIONS)
    login(supervisor(demo), PASSWORD)

    page.get_by_role("link", name="Reports").click()
    expect(page.get_by_role("heading", name="Reports", exact=True)).to_be_visible()
    expect(page.locator("svg.chart")).to_have_count(5)
    for figure in ("First response (median)", "Reply time (median)", "Session duration (median)",
                   "Left the queue unserved", "Customers served from the queue"):
        expect(page.get_by_text(figure, exact=True).first).to_be_visible()
    expect(page.locator(".report-table tbody tr").first).to_be_visible()
    expect(page.get_by_role("row").filter(has_text="小美")).to_be_visible()
    screenshot("reports")

    with page.expect_download() as download:
        page.locator("#agents-title").locator("xpath=..").get_by_role("link", name="Download CSV").click()
    saved = tmp_path / "agents.csv"
    download.value.save_as(saved)
    data = saved.read_bytes()
    assert data.startswith("\ufeffagent,kf_account,sessions_accepted".encode())
    assert "小美".encode() in data

    page.get_by_role("row").filter(has_text="小美").get_by_role("link", name="Timeline").click()
    expect(page.get_by_role("heading", name="Presence of 小美")).to_be_visible()
    expect(page.locator("svg.chart")).to_have_count(1)
    expect(page.get_by_text("Online in this period")).to_be_visible()
    expect(page.locator("td strong", has_text="online").first).to_be_visible()
    screenshot("presence")
    assert page.evaluate("window.__csp") == []


def test_the_reports_fit_a_phone_and_read_in_chinese(page, live_server, login, screenshot, demo):
    page.add_init_script(RECORD_VIOLATIONS)
    page.set_viewport_size({"width": 390, "height": 844})
    login(supervisor(demo), PASSWORD)

    page.goto(f"{live_server.url}/reports/")

    expect(page.get_by_role("heading", name="报表", exact=True)).to_be_visible()
    expect(page.get_by_text("首次响应（中位数）")).to_be_visible()
    # Every chart scales to the page's width: none is wider than the screen.
    widths = page.locator("svg.chart").evaluate_all("charts => charts.map(c => c.getBoundingClientRect().width)")
    assert widths and max(widths) <= 390
    screenshot("reports-phone")
    assert page.evaluate("window.__csp") == []


def test_the_printed_reports_keep_every_chart(page, live_server, login, demo):
    login(supervisor(demo), PASSWORD)
    page.goto(f"{live_server.url}/reports/")
    page.emulate_media(media="print")

    expect(page.locator("svg.chart")).to_have_count(5)
    expect(page.locator(".topbar")).to_be_hidden()
    assert all(box["height"] > 50 for box in page.locator("svg.chart").evaluate_all(
        "charts => charts.map(c => c.getBoundingClientRect().toJSON())"))
