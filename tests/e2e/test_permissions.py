"""Roles and official-account boundaries in a real browser."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import Membership
from tests.e2e.support import english
from tests.factories import (
    PASSWORD,
    AgentFactory,
    OfficialAccountFactory,
    auditor,
    supervisor,
)

pytestmark = pytest.mark.django_db(transaction=True)

NEW_PASSWORD = "noodles-at-noon-42"


def test_a_supervisor_creates_an_auditor_who_cannot_reach_agent_management(
    page, live_server, login, screenshot, django_user_model
):
    account = OfficialAccountFactory(name="Tea House 茶馆")
    AgentFactory(official_account=account, kf_nick="小美")
    english(page, live_server)
    login(supervisor(account), PASSWORD)

    page.get_by_role("navigation", name="Main").get_by_text("Administration").click()
    page.click("nav.mainnav >> text=Users")
    page.get_by_role("link", name="Add a user").click()
    page.fill("#id_username", "reviewer")
    page.fill("#id_password1", NEW_PASSWORD)
    page.fill("#id_password2", NEW_PASSWORD)
    page.select_option(f"#id_role_{account.pk}", "auditor")
    page.get_by_role("button", name="Create user").click()
    expect(page.locator("#messages")).to_contain_text("Created the user reviewer")
    expect(page.locator("#user-table")).to_contain_text("reviewer")
    screenshot("users")
    assert Membership.objects.get(user__username="reviewer").role == "auditor"
    page.locator("#user-table tr", has_text="reviewer").get_by_role("link", name="Edit").click()
    expect(page.locator(f"#id_role_{account.pk}")).to_have_value("auditor")
    screenshot("user-detail")

    page.get_by_role("button", name="Log out").click()
    login(django_user_model.objects.get(username="reviewer"), NEW_PASSWORD)

    nav = page.locator("nav.mainnav")
    expect(nav).to_contain_text("Audit log")
    expect(nav.get_by_role("link", name="Agents")).to_have_count(0)
    expect(nav.get_by_role("link", name="Users")).to_have_count(0)
    expect(nav.get_by_role("link", name="Sync status")).to_have_count(0)

    response = page.goto(f"{live_server.url}/agents/")
    assert response.status == 403
    expect(page.locator("main")).to_contain_text("Not allowed")
    screenshot("auditor-forbidden")
    assert page.goto(f"{live_server.url}/agents/add/").status == 403
    # The fragment endpoint is checked like its page.
    status = page.evaluate(
        "fetch('/agents/', {headers: {'HX-Request': 'true'}}).then(r => r.status)"
    )
    assert status == 403

    page.click("nav.mainnav >> text=Audit log")
    expect(page.locator("#audit-results")).to_contain_text("Create user")


def test_a_supervisor_of_one_account_cannot_see_another(page, live_server, login, screenshot):
    mine = OfficialAccountFactory(name="Noodle Bar 面馆")
    theirs = OfficialAccountFactory(name="Secret Shop")
    AgentFactory(official_account=mine, kf_nick="我的客服")
    foreign = AgentFactory(official_account=theirs, kf_nick="Their agent")
    auditor(theirs, username="their.auditor")
    english(page, live_server)
    login(supervisor(mine), PASSWORD)

    expect(page.locator("#account-select option")).to_have_count(1)
    expect(page.locator("#account-select")).to_contain_text("Noodle Bar")
    page.goto(f"{live_server.url}/agents/")
    expect(page.locator("#agent-table")).to_contain_text("我的客服")
    expect(page.locator("body")).not_to_contain_text("Their agent")
    page.goto(f"{live_server.url}/users/")
    expect(page.locator("body")).not_to_contain_text("their.auditor")

    assert page.goto(f"{live_server.url}/agents/{foreign.pk}/").status == 404
    assert page.goto(f"{live_server.url}/agents/{foreign.pk}/delete/").status == 404

    # Forcing the switcher to the other account is refused.
    page.goto(f"{live_server.url}/")
    page.evaluate(f"document.querySelector('#account-select option').value = '{theirs.pk}'")
    with page.expect_navigation():
        page.evaluate("document.querySelector('.accountswitch').submit()")
    expect(page.locator("main")).to_contain_text("Not allowed")
    page.goto(f"{live_server.url}/")
    expect(page.locator("h1")).to_contain_text("Noodle Bar")
    screenshot("supervisor-own-account")
