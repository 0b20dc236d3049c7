"""Versions of the live regions (accounts/live.py): an unchanged poll is a 204 that
reads nothing from the database beyond the access check, and every kind of change
makes the next poll of the regions that show it render the new content."""

from __future__ import annotations

import html
import re
import time

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.live import AGENTS, SESSIONS, _key
from accounts.sync import online_sync
from messaging import callback
from sessions_app.models import KfSession
from sessions_app.sync import queue_sync
from sessions_app.transitions import session_close_now
from tests.factories import agent_user
from tests.messaging.test_callback import AES_KEY, ORIGINAL_ID, TOKEN, event, post, text_message
from tests.sessions_app.test_views_support import (
    emulated_agent,
    served_customer,
    waiting_customer,
    wired_account,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]

QUEUE = reverse("sessions_app:queue")
FLOOR = reverse("sessions_app:panel_empty")


@pytest.fixture(autouse=True)
def versions_on(settings):
    """One process, one cache: the versions are trustworthy (the product's default
    needs CACHE_URL). The fragment cache is off, so every 200 is a real render."""
    settings.LIVE_VERSIONS = True
    settings.FRAGMENT_CACHE_SECONDS = 0
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def account(emulator):
    return wired_account(
        emulator, callback_token=TOKEN, encoding_aes_key=AES_KEY, original_id=ORIGINAL_ID,
        callback_mode="plain", agent_capacity=3,
    )


@pytest.fixture
def alice(account, emulator):
    return emulated_agent(account, emulator, "alice", nick="Alice")


def htmx(target: str) -> dict[str, str]:
    """What htmx sends when a region polls itself."""
    return {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target, "HTTP_HX_TRIGGER": target}


def poll_url(body: str, target: str) -> str:
    """The URL the region polls, token included, as the page shows it."""
    match = re.search(rf'id="{target}"[^>]*?hx-get="([^"]*)"', body)
    assert match, f"#{target} has no poll URL"
    return html.unescape(match.group(1))


class Region:
    """A region on screen: rendered once, then polled with the token it shows."""

    def __init__(self, client, path: str, target: str):
        self.client, self.target = client, target
        response = client.get(path, **htmx(target))
        assert response.status_code == 200
        self.body = response.content.decode()
        self.url = poll_url(self.body, target)
        assert "v=" in self.url

    def poll(self):
        response = self.client.get(self.url, **htmx(self.target))
        if response.status_code == 200:  # htmx swaps the region: the next poll sends its token
            self.body = response.content.decode()
            self.url = poll_url(self.body, self.target)
        return response


def regions(client, account, session) -> dict[str, tuple[str, str]]:
    openid = session.customer.openid
    conversation = reverse("messaging:conversation", args=[openid])
    return {
        "overview": ("/", "overview"),
        "queue-waiting": (QUEUE, "queue-waiting"),
        "open-sessions": (QUEUE, "open-sessions"),
        "auto-assign-status": (QUEUE, "auto-assign-status"),
        "agent-table": (reverse("accounts:agents"), "agent-table"),
        "agent-card": (reverse("accounts:agent_detail", args=[session.agent_id]), "agent-card"),
        "inbox": (reverse("messaging:inbox"), "inbox"),
        "alerts": (reverse("messaging:alerts"), "alerts"),
        "timeline": (conversation, "timeline"),
        "conversation-session": (conversation, "conversation-session"),
    }


REGION_NAMES = [
    "overview", "queue-waiting", "open-sessions", "auto-assign-status", "agent-table", "agent-card",
    "inbox", "alerts", "timeline", "conversation-session",
]


def tables(queries) -> set[str]:
    return {name for q in queries for name in re.findall(r'FROM "?(\w+)"?', q["sql"])}


@pytest.mark.parametrize("name", REGION_NAMES)
def test_an_unchanged_poll_is_a_204_costing_no_more_queries_than_the_access_check(
    boss_client, account, alice, emulator, name
):
    session = served_customer(account, alice, emulator, openid="o_served")
    waiting_customer(account, emulator, openid="o_waiting")
    path, target = regions(boss_client, account, session)[name]
    region = Region(boss_client, path, target)

    with CaptureQueriesContext(connection) as floor:
        assert boss_client.get(FLOOR, **htmx("action-panel")).status_code == 200
    with CaptureQueriesContext(connection) as polled:
        response = region.poll()

    assert response.status_code == 204
    assert response.content == b""
    assert len(polled.captured_queries) <= len(floor.captured_queries)
    assert tables(polled.captured_queries) <= tables(floor.captured_queries)


def test_a_poll_without_a_token_or_with_a_stale_or_foreign_one_renders(boss_client, account, alice, emulator, settings):
    served_customer(account, alice, emulator, openid="o_served")
    region = Region(boss_client, QUEUE, "open-sessions")
    assert boss_client.get(QUEUE, **htmx("open-sessions")).status_code == 200  # no token
    other = region.url.replace("v=", "v=0")
    assert boss_client.get(other, **htmx("open-sessions")).status_code == 200  # not a token we made
    waiting = Region(boss_client, QUEUE, "queue-waiting")
    # The waiting list's token does not answer for the board.
    board_with_waiting_token = QUEUE + "?" + waiting.url.split("?", 1)[1]
    assert boss_client.get(board_with_waiting_token, **htmx("open-sessions")).status_code == 200
    settings.LIVE_RECHECK_SECONDS = 5
    digest, issued = region.url.split("v=", 1)[1].split(".")
    old = region.url.replace(f"{digest}.{issued}", f"{digest}.{int(issued) - 6}")
    assert boss_client.get(old, **htmx("open-sessions")).status_code == 200  # older than the recheck


def test_without_a_shared_cache_every_poll_renders(boss_client, account, alice, emulator, settings):
    served_customer(account, alice, emulator, openid="o_served")
    region = Region(boss_client, QUEUE, "open-sessions")
    settings.LIVE_VERSIONS = False
    assert region.poll().status_code == 200


def test_another_viewer_gets_their_own_token(boss_client, account, alice, emulator):
    served_customer(account, alice, emulator, openid="o_served")
    boss_board = Region(boss_client, QUEUE, "open-sessions")
    client = Client()
    client.force_login(agent_user(account, agent=alice, username="alice_user"))
    # Alice's board is hers: the supervisor's token answers nothing for her.
    assert client.get(boss_board.url, **htmx("open-sessions")).status_code == 200


# ------------------------------------------------------------------ each kind of change


def test_an_online_sync_that_changes_presence_renders_the_regions_showing_agents(
    boss_client, account, alice, emulator, django_capture_on_commit_callbacks
):
    session = served_customer(account, alice, emulator, openid="o_served")
    shown = {n: Region(boss_client, *regions(boss_client, account, session)[n]) for n in ("overview", "open-sessions", "agent-table", "agent-card")}
    waiting = Region(boss_client, QUEUE, "queue-waiting")
    emulator.state.agent_online(appid=emulator.appid, kf_account=alice.kf_account, online=False)

    with django_capture_on_commit_callbacks(execute=True):
        result = online_sync(account_id=account.pk)

    assert result.changed == 1
    for name, region in shown.items():
        assert region.poll().status_code == 200, name
        assert region.poll().status_code == 204, name  # and then quiet again
    assert "offline" in shown["open-sessions"].body
    assert waiting.poll().status_code == 204  # the waiting list shows no agent


def test_a_sync_that_changes_nothing_bumps_nothing(boss_client, account, alice, emulator, django_capture_on_commit_callbacks):
    session = served_customer(account, alice, emulator, openid="o_served")
    with django_capture_on_commit_callbacks(execute=True):
        online_sync(account_id=account.pk)
        queue_sync(account_id=account.pk)
    shown = [Region(boss_client, *regions(boss_client, account, session)[n]) for n in REGION_NAMES]
    versions = cache.get_many([_key(account.pk, AGENTS), _key(account.pk, SESSIONS)])

    with django_capture_on_commit_callbacks(execute=True):
        assert online_sync(account_id=account.pk).changed == 0
        queue_sync(account_id=account.pk)

    assert cache.get_many([_key(account.pk, AGENTS), _key(account.pk, SESSIONS)]) == versions
    assert [r.target for r in shown if r.poll().status_code != 204] == []


def test_a_new_waiting_customer_renders_the_queue_and_the_overview(
    boss_client, account, alice, emulator, django_capture_on_commit_callbacks
):
    served_customer(account, alice, emulator, openid="o_served")
    waiting = Region(boss_client, QUEUE, "queue-waiting")
    overview = Region(boss_client, "/", "overview")
    emulator.customer("o_newcomer", text="有人吗？")

    with django_capture_on_commit_callbacks(execute=True):
        queue_sync(account_id=account.pk)

    assert waiting.poll().status_code == 200
    assert "o_newcomer" in waiting.body
    assert overview.poll().status_code == 200


def test_a_closed_session_leaves_the_board_and_the_session_box(
    boss_client, account, alice, emulator, django_capture_on_commit_callbacks
):
    session = served_customer(account, alice, emulator, openid="o_served")
    other = served_customer(account, alice, emulator, openid="o_other")
    board = Region(boss_client, QUEUE, "open-sessions")
    box = Region(boss_client, *regions(boss_client, account, session)["conversation-session"])
    other_box = Region(boss_client, *regions(boss_client, account, other)["conversation-session"])
    assert "o_served" in board.body

    with django_capture_on_commit_callbacks(execute=True):
        session_close_now(KfSession.objects.get(pk=session.pk))

    assert board.poll().status_code == 200
    assert "o_served" not in board.body
    assert box.poll().status_code == 200
    assert other_box.poll().status_code == 204  # another customer's box shows nothing of it


def test_a_message_stored_by_the_callback_renders_the_conversation_and_the_lists(
    boss_client, account, alice, emulator, monkeypatch, django_capture_on_commit_callbacks
):
    now = int(time.time())
    monkeypatch.setattr(callback, "_now", lambda: now)
    session = served_customer(account, alice, emulator, openid="o_served")
    other = served_customer(account, alice, emulator, openid="o_other")
    named = regions(boss_client, account, session)
    timeline = Region(boss_client, *named["timeline"])
    inbox = Region(boss_client, *named["inbox"])
    board = Region(boss_client, *named["open-sessions"])
    other_timeline = Region(boss_client, *regions(boss_client, account, other)["timeline"])

    with django_capture_on_commit_callbacks(execute=True):
        pushed = post(Client(), account, text_message("快递到哪了", openid="o_served", ts=now), ts=now)
    assert pushed.status_code == 200

    assert timeline.poll().status_code == 200
    assert "快递到哪了" in timeline.body
    assert inbox.poll().status_code == 200
    assert board.poll().status_code == 200
    assert other_timeline.poll().status_code == 204


def test_an_unfollow_pushed_to_the_callback_renders_the_session_box(
    boss_client, account, alice, emulator, monkeypatch, django_capture_on_commit_callbacks
):
    now = int(time.time())
    monkeypatch.setattr(callback, "_now", lambda: now)
    session = served_customer(account, alice, emulator, openid="o_served")
    box = Region(boss_client, *regions(boss_client, account, session)["conversation-session"])

    with django_capture_on_commit_callbacks(execute=True):
        assert post(Client(), account, event("unsubscribe", openid="o_served", ts=now), ts=now).status_code == 200

    assert box.poll().status_code == 200  # the reply window closed: no archived message says so


def test_a_send_renders_the_timeline(boss_client, account, alice, emulator, django_capture_on_commit_callbacks):
    session = served_customer(account, alice, emulator, openid="o_served")
    timeline = Region(boss_client, *regions(boss_client, account, session)["timeline"])
    send = reverse("messaging:send", args=["o_served"])

    with django_capture_on_commit_callbacks(execute=True):
        response = boss_client.post(
            send, {"msgtype": "text", "as_agent": alice.pk, "content": "马上帮您查"}, **htmx("composer")
        )

    assert response.status_code == 200
    assert timeline.poll().status_code == 200
    assert "马上帮您查" in timeline.body


def test_opening_a_conversation_renders_only_that_persons_inbox(
    boss_client, account, alice, emulator, django_capture_on_commit_callbacks
):
    served_customer(account, alice, emulator, openid="o_served")
    client = Client()
    client.force_login(agent_user(account, agent=alice, username="alice_user"))
    mine = Region(client, reverse("messaging:inbox"), "inbox")
    boss_inbox = Region(boss_client, reverse("messaging:inbox"), "inbox")

    with django_capture_on_commit_callbacks(execute=True):
        client.get(reverse("messaging:conversation", args=["o_served"]))

    assert mine.poll().status_code == 200
    assert boss_inbox.poll().status_code == 204


def test_an_agent_whose_customer_moved_to_another_agent_is_checked_again(
    account, alice, emulator, django_capture_on_commit_callbacks
):
    from sessions_app.transitions import session_open_now

    bob = emulated_agent(account, emulator, "bob", nick="Bob")
    session = served_customer(account, alice, emulator, openid="o_served")
    client = Client()
    client.force_login(agent_user(account, agent=alice, username="alice_user"))
    timeline = Region(client, reverse("messaging:conversation", args=["o_served"]), "timeline")
    assert timeline.poll().status_code == 204

    with django_capture_on_commit_callbacks(execute=True):
        session_open_now(account=account, customer=session.customer, agent=bob)

    assert timeline.poll().status_code == 404  # not hers any more: no 204 vouches for it
