"""Logged-out requests: a page load is redirected to the login page, an htmx request
is told to send the whole page there (HX-Redirect) instead of swapping the login
form into a region."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import OfficialAccountFactory, supervisor

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


def test_a_logged_out_page_load_is_redirected_to_the_login_page(client):
    response = client.get("/queue/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/queue/"
    assert "HX-Redirect" not in response


def test_a_logged_out_poll_sends_the_page_to_the_login_page_and_back(client):
    response = client.get(
        "/queue/", headers={**HTMX, "HX-Target": "open-sessions", "HX-Current-URL": "http://testserver/queue/?agent=7"}
    )

    assert response.status_code == 200
    assert response["HX-Redirect"] == "/login/?next=/queue/%3Fagent%3D7"
    assert response.content == b""


def test_a_logged_out_fragment_request_returns_to_the_page_on_screen_not_the_fragment(client):
    response = client.get(
        reverse("sessions_app:panel_empty"), headers={**HTMX, "HX-Current-URL": "http://testserver/queue/"}
    )

    assert response["HX-Redirect"] == "/login/?next=/queue/"


def test_a_logged_out_htmx_post_is_sent_to_the_login_page_too(client):
    response = client.post("/sync/agents/run/", headers={**HTMX, "HX-Current-URL": "http://testserver/sync/"})

    assert response.status_code == 200
    assert response["HX-Redirect"] == "/login/?next=/sync/"


def test_a_current_url_on_another_site_is_not_where_the_login_returns(client):
    response = client.get("/queue/", headers={**HTMX, "HX-Current-URL": "https://evil.example/queue/"})

    assert response["HX-Redirect"] == "/login/?next=/queue/"


def test_without_a_current_url_the_login_returns_to_the_requested_one(client):
    response = client.get("/queue/?agent=3", headers=HTMX)

    assert response["HX-Redirect"] == "/login/?next=/queue/%3Fagent%3D3"


def test_a_logged_out_history_restore_is_redirected_like_a_page_load(client):
    # htmx puts a history restore's answer in place of <body> and reads no HX-Redirect.
    response = client.get("/queue/", headers={**HTMX, "HX-History-Restore-Request": "true"})

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/queue/"


def test_pages_open_to_everyone_answer_htmx_as_usual(client):
    response = client.get(reverse("login"), headers=HTMX)

    assert response.status_code == 200 and "HX-Redirect" not in response


def test_a_logged_in_htmx_request_is_answered_by_its_view(client):
    client.force_login(supervisor(OfficialAccountFactory()))

    response = client.get("/queue/", headers={**HTMX, "HX-Target": "queue-waiting"})

    assert response.status_code == 200 and "HX-Redirect" not in response
    assert response.content.decode().lstrip().startswith('<section id="queue-waiting"')
