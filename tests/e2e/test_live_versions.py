"""A page left open: its polls are answered 204 while nothing changes, a change
arrives on the next poll, and relative times advance in the browser without a
render (accounts/live.py, static/js/live-times.js)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from sessions_app.models import KfSession
from sessions_app.sync import queue_sync
from tests.factories import PASSWORD, supervisor
from tests.sessions_app.test_views_support import emulated_agent, waiting_customer, wired_account

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_open_queue_page_counts_on_and_shows_a_new_customer(page, live_server, login, emulator):
    account = wired_account(emulator, name="小鹿杂货铺", agent_capacity=3)
    emulated_agent(account, emulator, "mei", nick="小美")
    first = waiting_customer(account, emulator, openid="o_first", text="在吗")
    queue_sync(account_id=account.pk)  # kfadmin's copy agrees with WeChat's queue

    polls: list[tuple[str, int]] = []
    page.on("response", lambda r: polls.append((r.url, r.status)) if "v=" in r.url else None)
    login(supervisor(account), PASSWORD)
    # Waiting for 50 seconds when the page opens: a minute a few seconds later.
    KfSession.objects.filter(customer=first).update(created_at=timezone.now() - timedelta(seconds=50))
    page.goto(f"{live_server.url}/queue/")
    waiting = page.locator("#queue-waiting")
    since = waiting.locator(f"#waiting-{KfSession.objects.get(customer=first).pk} time[data-elapsed]")
    expect(since).to_have_text(re.compile(r"^5\d\s秒$"))

    # Nothing changes: the polls are answered 204 and the page is left alone, but the
    # wait keeps counting, in the server's words.
    expect(since).to_have_text(re.compile(r"^1\s分钟$"), timeout=15_000)
    page.wait_for_timeout(6_000)
    assert any(status == 204 and "/queue/" in url for url, status in polls), polls
    assert all(status in (200, 204) for _, status in polls)

    # A customer writes and the queue sync stores them: the next poll shows them.
    emulator.customer(openid="o_second", text="我要退货")
    queue_sync(account_id=account.pk)
    expect(waiting).to_contain_text("o_second", timeout=15_000)
    expect(waiting.locator("time[data-elapsed]")).to_have_count(2)


def test_the_browser_words_durations_as_the_server_does(page, live_server, login, emulator):
    account = wired_account(emulator)
    login(supervisor(account), PASSWORD)
    page.goto(f"{live_server.url}/queue/")
    from django.utils import translation

    from accounts.templatetags.durations import duration

    for language in ("zh-hans", "en"):
        page.evaluate(f"document.documentElement.lang = '{language}'")
        with translation.override(language):
            for seconds in (0, 1, 59, 60, 125, 3600, 3660, 10740, 86400, 262800, 691200):
                assert page.evaluate(f"window.kfDuration({seconds})") == duration(seconds), (language, seconds)
