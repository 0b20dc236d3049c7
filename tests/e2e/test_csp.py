"""The Content-Security-Policy holds on every main page: the browser reports no violation."""

from __future__ import annotations

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import SyncState
from sessions_app.models import KfSession
from tests.e2e.support import csp_recorder
from tests.factories import (
    PASSWORD,
    AgentFactory,
    AuditEventFactory,
    KfSessionFactory,
    OfficialAccountFactory,
    SyncStateFactory,
    supervisor,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def busy_account():
    account = OfficialAccountFactory(name="Tea House")
    mei = AgentFactory(
        official_account=account, kf_nick="小美", online_status=1, accepted_case=4,
        kf_headimgurl="data:image/gif;base64,R0lGODlhAQABAAAAACwAAAAAAQABAAA=",
    )
    AgentFactory(official_account=account, kf_nick="小王", online_status=1, accepted_case=1)
    for _ in range(2):
        KfSessionFactory(official_account=account, agent=mei, state=KfSession.State.OPEN)
    KfSessionFactory(official_account=account)
    SyncStateFactory(
        official_account=account, job=SyncState.Job.BACKFILL, running_since=timezone.now(),
        progress={"state": "running", "windows_done": 3, "windows_total": 10, "records_stored": 1200},
    )
    AuditEventFactory(official_account=account, action="agent_add")
    return account


def test_no_page_breaks_the_content_security_policy(page, live_server, login, busy_account):
    violations = csp_recorder(page)
    boss = supervisor(busy_account)
    login(boss, PASSWORD)
    agent = busy_account.agents.get(kf_nick="小美")
    openid = KfSession.objects.filter(official_account=busy_account, agent=agent).first().customer.openid

    visited = {}
    for path in ("/", "/queue/", "/agents/", f"/agents/{agent.pk}/", "/inbox/", f"/conversations/{openid}/",
                 f"/conversations/{openid}/transcript/", "/quick-replies/", "/library/", "/history/",
                 "/history/exports/", "/reports/", f"/reports/agents/{agent.pk}/presence/", "/audit/", "/sync/",
                 "/users/", f"/users/{boss.pk}/", "/settings/alerts/", "/password/", "/login/"):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, path
        assert "content-security-policy" in response.headers, path
        page.wait_for_load_state("networkidle")
        visited[path] = violations()

    assert {path: found for path, found in visited.items() if found} == {}


def test_the_load_and_progress_bars_show_their_share(page, live_server, login, busy_account):
    login(supervisor(busy_account), PASSWORD)

    bar = page.locator("meter.bar").first
    expect(bar).to_be_visible()
    assert bar.bounding_box()["width"] > 50

    page.goto(f"{live_server.url}/sync/")
    progress = page.locator("progress.progress")
    expect(progress).to_have_attribute("value", "30")
    assert progress.bounding_box()["width"] >= 100


def test_htmx_adds_no_inline_style_of_its_own(page, live_server, login, busy_account):
    login(supervisor(busy_account), PASSWORD)

    assert page.evaluate("htmx.config.includeIndicatorStyles") is False
    assert page.locator("head style").count() == 0
