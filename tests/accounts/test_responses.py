"""accounts.responses.respond: the one way a view answers, page or fragment."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.contrib import messages
from django.contrib.auth.models import AnonymousUser
from django.contrib.messages.storage.cookie import CookieStorage
from django.test import RequestFactory
from django_htmx.middleware import HtmxDetails

from accounts.access import SUPERVISOR, AccountContext
from accounts.responses import region, respond, wants_fragment
from tests.factories import OfficialAccountFactory

pytestmark = pytest.mark.django_db

NOON_UTC = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HTMX = {"HX-Request": "true"}
RESTORE = {"HX-Request": "true", "HX-History-Restore-Request": "true"}


@pytest.fixture
def templates(tmp_path, settings):
    """A page and its fragments, beside the project's templates (_messages.html)."""
    (tmp_path / "page.html").write_text('<html><body>{% include "_messages.html" %}page at {{ when|time:"H:i" }}</body></html>')
    (tmp_path / "_part.html").write_text('<section id="part">part at {{ when|time:"H:i" }}</section>')
    (tmp_path / "_other.html").write_text('<section id="other">other</section>')
    engine = {**settings.TEMPLATES[0], "DIRS": [*settings.TEMPLATES[0]["DIRS"], tmp_path]}
    settings.TEMPLATES = [engine, *settings.TEMPLATES[1:]]


@pytest.fixture
def ctx():
    return AccountContext(account=OfficialAccountFactory(time_zone="Asia/Shanghai"), role=SUPERVISOR)


def make_request(method: str = "get", headers: dict | None = None, *, pending: list[str] = ()):
    request = getattr(RequestFactory(), method)("/page/", headers=headers or {})
    request.htmx = HtmxDetails(request)
    request.user = AnonymousUser()
    request._messages = CookieStorage(request)
    for text in pending:
        messages.info(request, text)
    return request


def answer(request, ctx, **kwargs):
    kwargs.setdefault("page", "page.html")
    return respond(request, ctx, {"when": NOON_UTC}, **kwargs)


def test_a_plain_request_gets_the_whole_page(templates, ctx):
    html = answer(make_request(), ctx, fragment="_part.html").content.decode()

    assert html.startswith("<html>") and "page at" in html and 'id="part"' not in html


def test_an_htmx_request_gets_the_fragment(templates, ctx):
    html = answer(make_request(headers=HTMX), ctx, fragment="_part.html").content.decode()

    assert html.startswith('<section id="part">') and "<html>" not in html


def test_an_htmx_request_gets_the_fragment_its_target_names(templates, ctx):
    request = make_request(headers={**HTMX, "HX-Target": "other"})

    html = answer(request, ctx, targets={"other": "_other.html"}, fragment="_part.html").content.decode()

    assert html.startswith('<section id="other">')


def test_a_target_not_named_gets_the_fragment_or_else_the_page(templates, ctx):
    request = make_request(headers={**HTMX, "HX-Target": "elsewhere"})

    with_fragment = answer(request, ctx, targets={"other": "_other.html"}, fragment="_part.html")
    without = answer(request, ctx, targets={"other": "_other.html"})

    assert with_fragment.content.decode().startswith('<section id="part">')
    assert without.content.decode().startswith("<html>")


def test_a_history_restore_gets_the_whole_page(templates, ctx):
    request = make_request(headers={**RESTORE, "HX-Target": "other"})

    html = answer(request, ctx, targets={"other": "_other.html"}, fragment="_part.html").content.decode()

    assert html.startswith("<html>")
    assert not wants_fragment(request) and region(request) is None


def test_without_a_page_the_answer_is_the_fragment(templates, ctx):
    html = answer(make_request(), ctx, page=None, fragment="_part.html").content.decode()

    assert html.startswith('<section id="part">')


@pytest.mark.parametrize("headers", [{}, HTMX, RESTORE])
def test_every_answer_varies_on_the_htmx_headers(templates, ctx, headers):
    response = answer(make_request(headers=headers), ctx, fragment="_part.html")

    vary = [name.strip() for name in response["Vary"].split(",")]
    assert {"HX-Request", "HX-Target", "HX-History-Restore-Request"} <= set(vary)


@pytest.mark.parametrize("headers", [{}, HTMX])
def test_times_are_shown_in_the_accounts_time_zone(templates, ctx, headers):
    html = answer(make_request(headers=headers), ctx, fragment="_part.html").content.decode()

    assert "at 20:00" in html  # noon UTC is 8 pm in Shanghai


def test_a_time_zone_the_server_does_not_know_falls_back_to_the_default(templates, ctx, settings):
    settings.TIME_ZONE = "UTC"
    ctx.account.time_zone = "Mars/Olympus_Mons"

    html = answer(make_request(headers=HTMX), ctx, fragment="_part.html").content.decode()

    assert "at 12:00" in html


def test_a_fragment_answering_an_action_brings_the_messages_region_even_when_empty(templates, ctx):
    html = answer(make_request("post", HTMX), ctx, fragment="_part.html").content.decode()

    region_html = html[html.index('<div id="messages"') :]
    assert 'hx-swap-oob="true"' in region_html and "message-" not in region_html


def test_a_fragment_answering_an_action_shows_what_it_says(templates, ctx):
    html = answer(make_request("post", HTMX, pending=["Saved."]), ctx, fragment="_part.html").content.decode()

    assert html.index('id="part"') < html.index('<div id="messages"') < html.index("Saved.")


def test_a_polled_fragment_brings_the_messages_only_when_some_are_pending(templates, ctx):
    quiet = answer(make_request(headers=HTMX), ctx, fragment="_part.html").content.decode()
    pending = answer(make_request(headers=HTMX, pending=["Sync queued."]), ctx, fragment="_part.html")

    assert 'id="messages"' not in quiet
    assert 'hx-swap-oob="true"' in pending.content.decode() and "Sync queued." in pending.content.decode()


def test_a_whole_page_shows_the_messages_in_its_own_region(templates, ctx):
    html = answer(make_request("post", pending=["Saved."]), ctx, fragment="_part.html").content.decode()

    assert html.count('id="messages"') == 1 and "hx-swap-oob" not in html and "Saved." in html


def test_the_trigger_event_goes_with_a_fragment_only(templates, ctx):
    fragment = answer(make_request("post", HTMX), ctx, fragment="_part.html", trigger="partChanged")
    page = answer(make_request("post"), ctx, fragment="_part.html", trigger="partChanged")

    assert json.loads(fragment["HX-Trigger"]) == {"partChanged": {}}
    assert "HX-Trigger" not in page
