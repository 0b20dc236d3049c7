"""Assigning and transferring in a team larger than AGENT_SELECT_MAX: the agent is a
search-as-you-type field that posts the kf account; the server checks it as strictly as
the drop-down's id (test_views.py covers the drop-down)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from sessions_app.models import KfSession
from tests.factories import agents_bulk
from tests.sessions_app.test_views_support import (
    emulated_agent,
    htmx,
    waiting_customer,
    wired_account,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]


@pytest.fixture
def account(emulator):
    return wired_account(emulator, agent_capacity=3)


def assign_url(customer):
    return reverse("sessions_app:assign", args=[customer.openid])


def test_the_assign_panel_of_a_thousand_agents_is_a_small_search_field(boss_client, account, emulator):
    agents_bulk(account, 1000)
    customer = waiting_customer(account, emulator)

    body = boss_client.get(assign_url(customer), **htmx("action-panel")).content.decode()

    assert "<select" not in body and "<option" not in body and len(body) < 6000
    assert 'name="agent"' in body and 'list="id_agent-options"' in body
    assert 'for="id_agent"' in body  # labelled
    assert "scope=bound" in body


def test_assigning_by_kf_account_opens_the_session(boss_client, account, emulator, settings):
    settings.AGENT_SELECT_MAX = 1
    alice = emulated_agent(account, emulator, "alice")
    emulated_agent(account, emulator, "bob")
    customer = waiting_customer(account, emulator)

    response = boss_client.post(assign_url(customer), {"agent": f" {alice.kf_account} "}, **htmx("action-panel"))

    assert response.status_code == 200 and "is now with alice" in response.content.decode()
    assert KfSession.objects.get(customer=customer).agent == alice


def test_an_unknown_kf_account_is_refused_in_words_and_nothing_changes(boss_client, account, emulator, settings):
    settings.AGENT_SELECT_MAX = 1
    emulated_agent(account, emulator, "alice")
    emulated_agent(account, emulator, "bob")
    customer = waiting_customer(account, emulator)

    for typed in ("carol@nowhere", "alice", "客服"):
        body = boss_client.post(assign_url(customer), {"agent": typed}, **htmx("action-panel")).content.decode()
        assert "Choose one of the listed agents" in body
        assert 'type="text"' in body  # the field again, with what was typed
    assert KfSession.objects.get(customer=customer).state == KfSession.State.WAITING
    assert not [c for c in emulator.calls if c.path.startswith("/customservice/kfsession/")]
