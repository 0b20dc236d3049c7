"""Auto-assignment in a real browser: a supervisor turns it on from the queue page and
watches the waiting customers go to the agents. The queue sync (what beat runs every
few seconds) runs in the test; the page refreshes by itself. Screenshot:
docs/screenshots/queue-auto-assign.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.models import AuditEvent
from sessions_app.models import AutoAssign, KfSession
from sessions_app.sync import queue_sync
from tests.factories import PASSWORD, supervisor
from tests.sessions_app.test_views_support import emulated_agent, served_customer, wired_account

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_supervisor_turns_auto_assignment_on_and_watches_customers_assigned(page, live_server, login, screenshot, emulator):
    account = wired_account(emulator, name="小鹿杂货铺", agent_capacity=3)
    mei = emulated_agent(account, emulator, "mei", nick="小美")
    qiang = emulated_agent(account, emulator, "qiang", nick="阿强")
    emulated_agent(account, emulator, "away", nick="休假中", online=False)
    served_customer(account, mei, emulator, archived=False)
    openids = [emulator.customer(openid=f"o_shopper_{n}", text="请问有货吗？") for n in range(4)]
    queue_sync(account_id=account.pk)  # the customers are in kfadmin's queue

    login(supervisor(account), PASSWORD)
    page.goto(f"{live_server.url}/queue/")
    waiting = page.locator("#queue-waiting")
    expect(waiting.locator(".queue-item")).to_have_count(4)
    panel = page.locator("#auto-assign")
    expect(panel.locator("#auto-assign-state")).to_have_text("已关闭")

    page.select_option("#id_strategy", "least_loaded")
    page.click("#auto-assign-on")
    expect(panel.locator("#auto-assign-state")).to_have_text("分配中")
    expect(page.locator("#messages")).to_contain_text("自动分配已开启")
    assert AutoAssign.objects.get(official_account=account).state == "on"

    queue_sync(account_id=account.pk)  # beat's next run

    # The page's own refresh shows the queue emptied and the sessions on the board.
    expect(waiting.locator(".queue-item")).to_have_count(0, timeout=15_000)
    board = page.locator("#open-sessions")
    for openid in openids:
        expect(board).to_contain_text(openid)
    expect(panel.locator("#auto-assign-last")).to_contain_text("分配 4 位", timeout=20_000)
    screenshot("queue-auto-assign")

    # Least loaded first, ties by kf account (mei before qiang): 阿强, 小美, 阿强, 小美;
    # nobody went to the offline agent.
    held = {
        agent.kf_nick: KfSession.objects.filter(agent=agent, state="open").count() for agent in (mei, qiang)
    }
    assert held == {"小美": 3, "阿强": 2}
    assigned = AuditEvent.objects.filter(action="session_assign", actor_label="auto-assignment", result="ok")
    assert sorted(assigned.values_list("target", flat=True)) == sorted(openids)

    # Paused, the next customer stays waiting.
    page.click("#auto-assign-pause")
    expect(panel.locator("#auto-assign-state")).to_have_text("已暂停")
    late = emulator.customer(openid="o_shopper_late")
    queue_sync(account_id=account.pk)
    expect(waiting.locator(".queue-item")).to_have_count(1, timeout=15_000)
    expect(waiting).to_contain_text(late)
