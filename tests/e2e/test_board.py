"""The sessions board of a large team, folded to one line per agent, in a real browser.

The board folds above `BOARD_LIST_ALL_UP_TO` open sessions; the threshold is lowered
here so a handful of sessions show the large-team layout. Screenshot:
docs/screenshots/queue-folded.png.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from accounts.models import AuditEvent
from sessions_app import selectors
from sessions_app.models import KfSession
from tests.factories import PASSWORD, supervisor
from tests.sessions_app.test_views_support import emulated_agent, served_customer, wired_account

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def team(monkeypatch, emulator):
    monkeypatch.setattr(selectors, "BOARD_LIST_ALL_UP_TO", 4)
    account = wired_account(emulator, name="小鹿杂货铺", agent_capacity=4)
    names = {"mei": "小美", "qiang": "阿强", "lili": "丽丽", "wang": "老王"}
    agents = [emulated_agent(account, emulator, prefix, nick=nick) for prefix, nick in names.items()]
    emulated_agent(account, emulator, "away", nick="休假中", online=False)
    for agent, count in zip(agents, (4, 3, 2, 0), strict=True):
        for _ in range(count):
            served_customer(account, agent, emulator, archived=False)
    return account, agents


def test_a_supervisor_picks_an_agent_on_a_folded_board_and_back(page, live_server, login, screenshot, team):
    account, agents = team
    mei = agents[0]
    login(supervisor(account), PASSWORD)
    page.goto(f"{live_server.url}/queue/")

    board = page.locator("#open-sessions")
    expect(board).to_contain_text("4 位客服在线或有会话")
    expect(board).to_contain_text("1 位离线客服没有会话")
    expect(board.locator(".session-item")).to_have_count(0)

    page.click(f"#agent-pick-{mei.pk}")
    expect(page).to_have_url(f"{live_server.url}/queue/?agent={mei.pk}")
    mei_sessions = KfSession.objects.filter(agent=mei, state=KfSession.State.OPEN).select_related("customer")
    expect(board.locator(".session-item")).to_have_count(4)
    for session in mei_sessions:
        expect(board).to_contain_text(session.customer.openid)
    expect(page.locator(f"#agent-pick-{mei.pk}")).to_have_attribute("aria-expanded", "true")
    screenshot("queue-folded")

    # The poll keeps the choice (its URL carries it) ...
    expect(board).to_have_attribute("hx-get", re.compile(rf"^/queue/\?agent={mei.pk}&v=[0-9a-f]+\.[0-9]+$"))
    # ... a session's actions open in the panel without touching the address bar ...
    first = mei_sessions.first()
    page.click(f"#session-close-{first.pk}")
    expect(page.locator("#action-panel")).to_contain_text(first.customer.openid)
    expect(page).to_have_url(f"{live_server.url}/queue/?agent={mei.pk}")
    page.click("#action-panel button[type=submit]")
    expect(board.locator(".session-item")).to_have_count(3)
    assert AuditEvent.objects.filter(action="session_close", target=first.customer.openid).exists()

    # ... and picking the agent again folds the board.
    page.click(f"#agent-pick-{mei.pk}")
    expect(page).to_have_url(f"{live_server.url}/queue/")
    expect(board.locator(".session-item")).to_have_count(0)
