"""A team of 1000 agents in a real browser: the agents table a page at a time, with its
search and filter in the address bar, and an agent field that suggests as one types.
Saves docs/screenshots/agents-large-team.png (the README links it)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.factories import PASSWORD, OfficialAccountFactory, agents_bulk, supervisor

pytestmark = pytest.mark.django_db(transaction=True)


def english(page, live_server) -> None:
    page.context.add_cookies([{"name": "django_language", "value": "en", "url": live_server.url}])


@pytest.fixture
def team():
    account = OfficialAccountFactory(name="Big shop", wechat_id="big_shop")
    agents_bulk(account, 1000)
    return account


def test_the_agents_page_of_a_thousand_pages_searches_and_filters(page, live_server, login, screenshot, team):
    english(page, live_server)
    login(supervisor(team), PASSWORD)

    page.goto(f"{live_server.url}/agents/")
    table = page.locator("#agent-table")
    expect(table).to_contain_text("1000 agents")
    expect(table).to_contain_text("Showing 1–50 of 1000")
    expect(table.locator("tbody tr")).to_have_count(50)

    table.get_by_role("link", name="Next →").click()
    expect(table).to_contain_text("Showing 51–100 of 1000")
    expect(page).to_have_url(re.compile(r"/agents/\?page=2$"))
    expect(table.locator("tbody tr").first).to_contain_text("agent0050@big_shop")

    page.get_by_label("Search", exact=True).fill("agent01")
    expect(table).to_contain_text("100 matching agents")
    expect(page).to_have_url(re.compile(r"/agents/\?q=agent01(&status=)?$"))  # the form's own fields
    page.get_by_label("Show", exact=True).select_option("online")
    expect(table).to_contain_text("33 matching agents")
    expect(page).to_have_url(re.compile(r"/agents/\?q=agent01&status=online$"))
    expect(table.locator("tbody tr")).to_have_count(33)
    # The poll asks for what is shown.
    expect(table).to_have_attribute("hx-get", re.compile(r"^/agents/\?q=agent01&status=online&v="))  # with its token

    page.get_by_label("Search", exact=True).fill("nobody at all")
    expect(table).to_contain_text("No agent matches this search.")
    page.get_by_label("Search", exact=True).fill("")
    page.get_by_label("Show", exact=True).select_option("")
    expect(table).to_contain_text("Showing 1–50 of 1000")
    screenshot("agents-large-team")

    # Reloading the address keeps the state.
    page.goto(f"{live_server.url}/agents/?q=%E5%AE%A2%E6%9C%8D09&page=2")
    expect(page.get_by_label("Search", exact=True)).to_have_value("客服09")
    expect(table).to_contain_text("Showing 51–100 of 100")


def test_the_history_agent_filter_suggests_as_one_types(page, live_server, login, team):
    english(page, live_server)
    login(supervisor(team), PASSWORD)

    page.goto(f"{live_server.url}/history/")
    field = page.get_by_label("Agent", exact=True)
    expect(field).to_have_attribute("list", "id_agent-options")
    field.press_sequentially("agent099", delay=30)
    options = page.locator("#id_agent-options option")
    expect(options).to_have_count(10)
    expect(options.first).to_have_attribute("value", "agent0990@big_shop")

    field.fill("agent0991@big_shop")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"agent=agent0991%40big_shop"))
    expect(page.locator("#filter-agent-errors")).to_be_empty()

    field.fill("agent0991")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#filter-agent-errors")).to_contain_text("valid choice")
