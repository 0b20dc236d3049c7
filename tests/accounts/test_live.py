"""The short shared cache of polled fragments, keyed by the versions of what they show (accounts/live.py)."""

from __future__ import annotations

import time

import pytest
from django.contrib.messages import constants, get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.db import SessionStore
from django.core.cache import cache
from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.test import RequestFactory
from django.urls import reverse
from django_htmx.middleware import HtmxDetails

from accounts.access import AGENT, SUPERVISOR, AccountContext
from accounts.audit import audit_event_record
from accounts.live import ALL, Region, live_poll
from tests.factories import AgentFactory, OfficialAccountFactory, agent_user
from tests.sessions_app.test_views_support import served_customer, waiting_customer

pytestmark = [pytest.mark.django_db(transaction=False), pytest.mark.usefixtures("english_default")]

QUEUE = reverse("sessions_app:queue")


@pytest.fixture
def account():
    return OfficialAccountFactory(agent_capacity=3)


@pytest.fixture(autouse=True)
def fresh_cache(settings):
    settings.FRAGMENT_CACHE_SECONDS = 30
    cache.clear()
    yield
    cache.clear()


def poll(target: str) -> dict[str, str]:
    """What htmx sends when a region polls itself."""
    return {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target, "HTTP_HX_TRIGGER": target}


def waiting_body(client) -> str:
    return client.get(QUEUE, **poll("queue-waiting")).content.decode()


# ------------------------------------------------------------------ through the views


def test_a_poll_reuses_the_copy_rendered_for_the_one_before(boss_client, account):
    waiting_customer(account, openid="o_first")
    assert "o_first" in waiting_body(boss_client)
    waiting_customer(account, openid="o_second")  # a sync wrote it: nothing audited
    assert "o_second" not in waiting_body(boss_client)


def live_version(*, account_id: int):
    return cache.get(f"kfadmin:live:v:{account_id}:{ALL}")


def test_an_audited_write_to_the_account_shows_on_the_next_poll(boss_client, account, django_capture_on_commit_callbacks):
    waiting_customer(account, openid="o_first")
    waiting_body(boss_client)
    waiting_customer(account, openid="o_second")
    before = live_version(account_id=account.pk)
    with django_capture_on_commit_callbacks(execute=True):
        audit_event_record(actor=None, action="session_close", official_account=account)
    assert live_version(account_id=account.pk) == before + 1
    assert "o_second" in waiting_body(boss_client)


def fragment_cached(request, ctx, name, build, *, options=""):
    """The fragment cache alone, as the views use it: a region varying by `options`."""
    variant = f"{ctx.role}.{ctx.agent.pk if ctx.agent else ''}.{options}"
    return live_poll(request, Region(ctx, name, (), variant=variant), lambda token: build())


def test_a_write_to_another_account_leaves_this_copy_alone(boss_client, account, django_capture_on_commit_callbacks):
    waiting_customer(account, openid="o_first")
    waiting_body(boss_client)
    waiting_customer(account, openid="o_second")
    with django_capture_on_commit_callbacks(execute=True):
        audit_event_record(actor=None, action="session_close", official_account=OfficialAccountFactory())
    assert "o_second" not in waiting_body(boss_client)


def test_a_click_or_a_page_load_always_renders_afresh(boss_client, account):
    waiting_customer(account, openid="o_first")
    waiting_body(boss_client)
    waiting_customer(account, openid="o_second")
    clicked = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "queue-waiting", "HTTP_HX_TRIGGER": "waiting-assign-1"}
    assert "o_second" in boss_client.get(QUEUE, **clicked).content.decode()
    assert "o_second" in boss_client.get(QUEUE).content.decode()


def test_a_copy_lives_only_as_long_as_the_setting_says(boss_client, account, settings):
    settings.FRAGMENT_CACHE_SECONDS = 1
    waiting_customer(account, openid="o_first")
    waiting_body(boss_client)
    waiting_customer(account, openid="o_second")
    assert "o_second" not in waiting_body(boss_client)
    time.sleep(1.1)
    assert "o_second" in waiting_body(boss_client)


def test_zero_seconds_renders_every_poll(boss_client, account, settings):
    settings.FRAGMENT_CACHE_SECONDS = 0
    waiting_customer(account, openid="o_first")
    waiting_body(boss_client)
    waiting_customer(account, openid="o_second")
    assert "o_second" in waiting_body(boss_client)


def test_an_agent_never_gets_the_supervisors_copy_of_the_board(boss_client, client, account):
    alice = AgentFactory(official_account=account, kf_nick="Alice", online_status=1)
    bob = AgentFactory(official_account=account, kf_nick="Bob", online_status=1)
    served_customer(account, alice, openid="o_alices", archived=False)
    served_customer(account, bob, openid="o_bobs", archived=False)
    boss_body = boss_client.get(QUEUE, **poll("open-sessions")).content.decode()
    assert "o_alices" in boss_body and "o_bobs" in boss_body

    client.force_login(agent_user(account, agent=alice, username="alice_user"))
    alice_body = client.get(QUEUE, **poll("open-sessions")).content.decode()
    assert "o_alices" in alice_body and "o_bobs" not in alice_body
    client.force_login(agent_user(account, agent=bob, username="bob_user"))
    bob_body = client.get(QUEUE, **poll("open-sessions")).content.decode()
    assert "o_bobs" in bob_body and "o_alices" not in bob_body


def test_each_language_has_its_own_copy(boss_client, account, settings):
    waiting_customer(account, openid="o_first")
    assert "Waiting" in waiting_body(boss_client)
    boss_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    assert "等待" in waiting_body(boss_client)


def test_the_overview_poll_is_cached_too(boss_client, account):
    AgentFactory(official_account=account, kf_nick="Early", online_status=1)
    assert "Early" in boss_client.get("/", **poll("overview")).content.decode()
    AgentFactory(official_account=account, kf_nick="Late", online_status=1)
    assert "Late" not in boss_client.get("/", **poll("overview")).content.decode()
    assert "Late" in boss_client.get("/").content.decode()


# ------------------------------------------------------------------ what is never stored


def polled_request(user, target: str = "overview"):
    request = RequestFactory().get("/", **poll(target))
    request.user = user
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    request.htmx = HtmxDetails(request)
    return request


def counting_build(body: str = "<section>live</section>", extra=None):
    calls = []

    def build() -> HttpResponse:
        calls.append(1)
        response = HttpResponse(body)
        if extra:
            extra(response)
        return response

    return build, calls


def test_a_response_with_the_users_csrf_token_is_not_stored(boss, account):
    ctx = AccountContext(account=account, role=SUPERVISOR)
    request = polled_request(boss)

    def build() -> HttpResponse:
        return HttpResponse(f"<form>{get_token(request)}</form>")

    fragment_cached(request, ctx, "form", build)
    other = polled_request(boss)
    build_again, calls = counting_build()
    assert fragment_cached(other, ctx, "form", build_again).content == b"<section>live</section>"
    assert calls == [1]


def test_pending_flash_messages_are_rendered_for_their_user_and_not_stored(boss, account):
    ctx = AccountContext(account=account, role=SUPERVISOR)
    request = polled_request(boss)
    request._messages.add(constants.SUCCESS, "Saved.")
    build, calls = counting_build()
    fragment_cached(request, ctx, "overview", build)
    assert calls == [1]
    assert len(get_messages(request)) == 1  # still there for the fragment's own render
    build_again, calls_again = counting_build("<section>fresh</section>")
    assert fragment_cached(polled_request(boss), ctx, "overview", build_again).content == b"<section>fresh</section>"
    assert calls_again == [1]


def test_a_response_that_fires_a_client_event_is_not_stored(boss, account):
    ctx = AccountContext(account=account, role=SUPERVISOR)
    build, calls = counting_build(extra=lambda r: r.__setitem__("HX-Trigger", "sessionsChanged"))
    fragment_cached(polled_request(boss), ctx, "overview", build)
    fragment_cached(polled_request(boss), ctx, "overview", build)
    assert calls == [1, 1]


def test_the_same_view_of_another_account_or_agent_is_a_different_copy(boss, account):
    other = OfficialAccountFactory()
    agent_a, agent_b = AgentFactory(official_account=account), AgentFactory(official_account=account)
    build, calls = counting_build()
    for ctx in (
        AccountContext(account=account, role=SUPERVISOR),
        AccountContext(account=other, role=SUPERVISOR),
        AccountContext(account=account, role=AGENT, agent=agent_a),
        AccountContext(account=account, role=AGENT, agent=agent_b),
    ):
        fragment_cached(polled_request(boss), ctx, "open-sessions", build)
    fragment_cached(polled_request(boss), AccountContext(account=account, role=SUPERVISOR), "open-sessions", build, options="7")
    assert len(calls) == 5
    # And each is reused by its own viewers.
    fragment_cached(polled_request(boss), AccountContext(account=account, role=AGENT, agent=agent_a), "open-sessions", build)
    assert len(calls) == 5
