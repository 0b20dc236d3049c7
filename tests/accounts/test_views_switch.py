"""The official-account switcher in the header."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.access import SESSION_KEY
from tests.factories import MembershipFactory, OfficialAccountFactory, supervisor

pytestmark = pytest.mark.django_db

URL = "/account/switch/"


def test_the_url_is_named():
    assert reverse("accounts:account_switch") == URL


def test_switching_opens_the_other_account_and_returns_to_the_page(client):
    first, second = OfficialAccountFactory(name="First"), OfficialAccountFactory(name="Second")
    person = supervisor(first)
    MembershipFactory(user=person, official_account=second, role="auditor")
    client.force_login(person)

    response = client.post(URL, {"account": second.pk, "next": "/audit/?action=agent_add"})

    assert response.status_code == 302 and response["Location"] == "/audit/?action=agent_add"
    assert client.session[SESSION_KEY] == second.pk
    html = client.get(reverse("home")).content.decode()
    assert "Second" in html
    # The header now shows the auditor's menu.
    assert reverse("accounts:agents") not in html


def test_switching_to_an_account_without_a_role_is_403_and_changes_nothing(client):
    mine = OfficialAccountFactory()
    theirs = OfficialAccountFactory()
    client.force_login(supervisor(mine))
    client.get(reverse("home"))

    response = client.post(URL, {"account": theirs.pk, "next": "/"})

    assert response.status_code == 403
    assert client.session[SESSION_KEY] == mine.pk


def test_an_outside_next_url_goes_home(client):
    account = OfficialAccountFactory()
    client.force_login(supervisor(account))

    response = client.post(URL, {"account": account.pk, "next": "https://evil.example/"})

    assert response["Location"] == "/"


def test_a_garbled_account_is_403(client):
    client.force_login(supervisor(OfficialAccountFactory()))

    assert client.post(URL, {"account": "x"}).status_code == 403


def test_switching_needs_a_login_and_a_post(client):
    assert client.post(URL, {"account": 1}).status_code == 302
    client.force_login(supervisor(OfficialAccountFactory()))
    assert client.get(URL).status_code == 405


def test_the_switcher_lists_only_the_users_accounts(client):
    mine = OfficialAccountFactory(name="Mine")
    OfficialAccountFactory(name="Not mine")
    client.force_login(supervisor(mine))

    html = client.get(reverse("home")).content.decode()

    assert f'action="{URL}"' in html
    assert ">Mine</option>" in html and "Not mine" not in html
