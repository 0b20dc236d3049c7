"""Agent management and the console pages in a real browser, against the emulator.

The live server's official account talks to the emulator over HTTP, so every add,
invite and upload here is a real WeChat-style call. Each test saves a screenshot
under docs/screenshots/ (the README links the stable names).
"""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from PIL import Image, ImageDraw
from playwright.sync_api import expect

from accounts.live import SESSIONS, live_bump
from accounts.models import Agent, AuditEvent
from accounts.sync import agents_sync, online_sync
from tests.e2e.support import english
from tests.factories import (
    PASSWORD,
    AuditEventFactory,
    KfSessionFactory,
    MessageRecordFactory,
    SyncStateFactory,
    UserFactory,
    supervisor,
)

pytestmark = pytest.mark.django_db(transaction=True)


def write_jpeg(path, size=(640, 640)) -> str:
    image = Image.new("RGB", size, (7, 193, 96))
    draw = ImageDraw.Draw(image)
    draw.ellipse((size[0] * 0.2, size[1] * 0.2, size[0] * 0.8, size[1] * 0.8), fill=(255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    path.write_bytes(buffer.getvalue())
    return str(path)


def test_a_supervisor_adds_an_agent_invites_someone_and_uploads_an_avatar(
    page, live_server, login, screenshot, kf_account_row, emulator, tmp_path
):
    account = kf_account_row
    english(page, live_server)
    login(supervisor(account), PASSWORD)

    page.click("nav.mainnav >> text=Agents")
    expect(page.locator("#agent-table")).to_contain_text("No agents yet")

    # Add: the form is checked before WeChat is called...
    page.fill("#id_kf_prefix", "bad-name!")
    page.fill("#id_nickname", "小美")
    page.click("#agent-add-form button[type=submit]")
    expect(page.locator("#agent-add-form .errorlist")).to_contain_text("letters, digits and underscores")
    assert not [c for c in emulator.calls if c.path.endswith("/kfaccount/add")]

    # ...then the htmx form adds it at WeChat and the table refreshes by itself.
    page.fill("#id_kf_prefix", "mei")
    page.click("#agent-add-form button[type=submit]")
    expect(page.locator("#messages")).to_contain_text(f"Added mei@{emulator.wechat_id}")
    row = page.locator("#agent-table tbody tr", has_text=f"mei@{emulator.wechat_id}")
    expect(row).to_contain_text("小美")
    expect(row).to_contain_text("Not bound")
    expect(page.locator("#id_kf_prefix")).to_have_value("")

    # Invite the person who will work as this agent.
    row.get_by_role("link", name=re.compile("Manage")).click()
    page.fill("#id_invite_wx", "mei_wechat")
    page.click("#agent-invite button[type=submit]")
    expect(page.locator("#agent-invite")).to_contain_text("pending until")
    expect(page.locator("#agent-card")).to_contain_text("mei_wechat")
    invite = [c for c in emulator.calls if c.path.endswith("/kfaccount/inviteworker")][-1]
    assert invite.json == {"kf_account": f"mei@{emulator.wechat_id}", "invite_wx": "mei_wechat"}

    # Upload an avatar: an oblong one first gets advice in the preview and after upload.
    page.set_input_files("#id_avatar", write_jpeg(tmp_path / "wide.jpg", (800, 400)))
    expect(page.locator("#avatar-preview")).to_be_visible()
    expect(page.locator("#avatar-preview [data-hints]")).to_contain_text("not square")
    page.set_input_files("#id_avatar", write_jpeg(tmp_path / "face.jpg"))
    expect(page.locator("#avatar-preview [data-hints] li")).to_have_count(0)
    page.click("#agent-avatar-form button[type=submit]")
    expect(page.locator("#messages")).to_contain_text("Avatar uploaded to WeChat")
    expect(page.locator("#agent-card img.avatar")).to_have_attribute("src", re.compile(r"/__emulator__/headimg/"))
    # The browser shows the picture WeChat now has.
    page.wait_for_function("document.querySelector('#agent-card img.avatar').naturalWidth === 640")

    screenshot("agent-detail")
    agent = Agent.objects.get(kf_account=f"mei@{emulator.wechat_id}")
    assert agent.invite_status == "waiting" and agent.kf_headimgurl
    assert list(AuditEvent.objects.filter(result="ok", action__startswith="agent_").order_by("id").values_list("action", flat=True)) == [
        "agent_add",
        "agent_invite",
        "agent_avatar",
    ]


def test_deleting_an_agent_asks_for_confirmation_in_a_dialog(page, live_server, login, screenshot, kf_account_row, emulator):
    account = kf_account_row
    emulator.bound_agent("lei", nickname="Lei")
    agents_sync(account_id=account.pk)
    english(page, live_server)
    login(supervisor(account), PASSWORD)
    page.goto(f"{live_server.url}/agents/")
    row = page.locator("#agent-table tbody tr", has_text="lei@")

    row.get_by_role("link", name="Delete…").click()
    dialog = page.locator("dialog[open]")
    expect(dialog).to_contain_text(f"Delete lei@{emulator.wechat_id}?")
    screenshot("agent-delete")
    dialog.get_by_role("button", name="Cancel").click()
    expect(page.locator("dialog")).to_have_count(0)
    assert Agent.objects.get(kf_account__startswith="lei@").deleted_at is None

    row.get_by_role("link", name="Delete…").click()
    page.locator("dialog[open]").get_by_role("button", name=f"Delete lei@{emulator.wechat_id}").click()
    expect(page.locator("#messages")).to_contain_text("Deleted")
    expect(page.locator("#agent-table")).to_contain_text("No agents yet")
    assert Agent.objects.get(kf_account__startswith="lei@").deleted_at is not None


def seed_busy_console(account, emulator) -> None:
    """A realistic afternoon: agents with loads, a queue, the day's messages, history."""
    for prefix, nick, online in (
        ("xiaomei", "小美", True),
        ("alex", "Alex", True),
        ("wanglei", "王磊", True),
        ("lina", "李娜", False),
    ):
        emulator.bound_agent(prefix, nickname=nick, online=online)
    agents_sync(account_id=account.pk)
    online_sync(account_id=account.pk)
    loads = {"xiaomei": 4, "alex": 2, "wanglei": 5}
    now = timezone.now()
    for agent in Agent.objects.filter(official_account=account):
        Agent.objects.filter(pk=agent.pk).update(
            accepted_case=loads.get(agent.prefix, 0),
            last_online_at=now - timedelta(hours=3) if agent.prefix == "lina" else now,
        )
        for _ in range(loads.get(agent.prefix, 0)):
            KfSessionFactory(official_account=account, agent=agent, state="open")
    Agent.objects.create(
        official_account=account, kf_account=f"newbie@{emulator.wechat_id}", kf_nick="新同事", kf_id="1010",
        invite_wx="zhang_san88", invite_status="waiting", invite_expire_time=now + timedelta(days=6),
    )
    for minutes in (9, 4, 1):
        KfSessionFactory(official_account=account, created_at=now - timedelta(minutes=minutes, seconds=20))
    account.waiting_count = 3
    account.save(update_fields=["waiting_count"])
    start = timezone.localtime(now, timezone.get_fixed_timezone(480)).replace(hour=0, minute=5)
    for index in range(42):
        MessageRecordFactory(official_account=account, opercode=2003 if index % 3 else 2002, time=start + timedelta(minutes=index))
    for job in ("agents", "online", "queue", "sessions", "history"):
        SyncStateFactory(official_account=account, job=job, last_success_at=now - timedelta(seconds=8))
    SyncStateFactory(
        official_account=account, job="backfill", running_since=now - timedelta(minutes=2),
        running_token="demo", heartbeat_at=now, lease_until=now + timedelta(minutes=10),
        last_started_at=now - timedelta(minutes=2), last_success_at=None,
        progress={"state": "running", "percent": 30.0, "windows_done": 9, "windows_total": 30,
                  "records_stored": 48213, "eta_seconds": 290},
    )
    mei = UserFactory(username="mei.supervisor")
    lei = UserFactory(username="lei.agent")
    for at, actor, action, target, result, errcode, message, params in (
        (90, mei, "agent_add", f"xiaomei@{emulator.wechat_id}", "ok", None, "", {"nickname": "小美"}),
        (75, mei, "agent_invite", f"newbie@{emulator.wechat_id}", "error", 65409, "WeChat does not know this WeChat ID. Check the agent's WeChat ID and invite again.", {"invite_wx": "zhangsan"}),
        (70, mei, "agent_invite", f"newbie@{emulator.wechat_id}", "ok", None, "", {"invite_wx": "zhang_san88"}),
        (40, lei, "session_close", "o6_bmjrPTlm6_2sgVt7hMZOPfL001", "ok", None, "", {}),
        (20, mei, "sync_run", "agents", "ok", None, "", {}),
        (5, lei, "message_send", "o6_bmjrPTlm6_2sgVt7hMZOPfL002", "error", 45015, "This customer has not written in the last 48 hours (or has unfollowed the account), so WeChat will not deliver the message. Wait until they write again.", {"msgtype": "text"}),
    ):
        AuditEventFactory(
            official_account=account, actor=actor, action=action, target=target, result=result,
            errcode=errcode, message=message, params=params, at=now - timedelta(minutes=at),
        )


def test_the_console_pages_at_desktop_and_phone_width(page, live_server, login, screenshot, kf_account_row, emulator):
    account = kf_account_row
    account.name = "示例商城 Demo Shop"
    account.save(update_fields=["name"])
    seed_busy_console(account, emulator)
    login(supervisor(account), PASSWORD)

    expect(page.locator("#overview .stat").first).to_be_visible()
    expect(page.locator("#overview .load")).to_have_count(3)
    screenshot("overview")

    page.goto(f"{live_server.url}/agents/")
    expect(page.locator("#agent-table tbody tr")).to_have_count(5)
    screenshot("agents")

    page.goto(f"{live_server.url}/audit/")
    expect(page.locator("#audit-results tbody tr")).to_have_count(7)  # the six seeded events and this login
    screenshot("audit")

    page.goto(f"{live_server.url}/sync/")
    expect(page.locator("#sync-backfill .progress")).to_be_visible()
    screenshot("sync")

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/")
    expect(page.locator("#overview")).to_be_visible()
    # Nothing sticks out sideways on a phone.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot("overview-phone")
    page.goto(f"{live_server.url}/agents/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot("agents-phone")


def test_the_overview_refreshes_itself_without_reloading(page, live_server, login, kf_account_row):
    account = kf_account_row
    english(page, live_server)
    login(supervisor(account), PASSWORD)
    page.evaluate("window.__sameDocument = true")
    waiting = page.locator("#overview .stat").nth(1).locator(".value")
    expect(waiting).to_have_text("0")

    KfSessionFactory(official_account=account)
    live_bump(account.pk, SESSIONS)  # as the sync storing it does (accounts/live.py)

    expect(waiting).to_have_text("1", timeout=15_000)
    assert page.evaluate("window.__sameDocument") is True
