"""The queue page's auto-assignment switch: who may turn it on, pause, resume or turn
it off, and what the page says about it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import AuditEvent
from sessions_app.models import AutoAssign
from sessions_app.sync import queue_sync
from tests.factories import agent_user, auditor, outsider, sent_to_login
from tests.sessions_app.test_views_support import emulated_agent, htmx, wired_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]

QUEUE = reverse("sessions_app:queue")
SWITCH = reverse("sessions_app:auto_assign")


@pytest.fixture
def account(emulator):
    return wired_account(emulator, agent_capacity=3)


def setting(account) -> AutoAssign | None:
    return AutoAssign.objects.filter(official_account=account).first()


def test_a_supervisor_turns_it_on_pauses_resumes_and_turns_it_off(boss_client, account, boss):
    steps = [("on", "last_agent"), ("paused", "last_agent"), ("on", "last_agent"), ("off", "least_loaded")]
    for state, strategy in steps:
        response = boss_client.post(SWITCH, {"state": state, "strategy": strategy})
        assert response.status_code == 302 and response["Location"] == QUEUE
        current = setting(account)
        assert (current.state, current.strategy, current.changed_by) == (state, strategy, boss.username)

    changes = AuditEvent.objects.filter(action="auto_assign_update", official_account=account).order_by("at", "id")
    assert [(e.actor, e.params["state"], e.params["was"]["state"]) for e in changes] == [
        (boss, "on", "off"), (boss, "paused", "on"), (boss, "on", "paused"), (boss, "off", "on")
    ]
    page = boss_client.get(QUEUE).content.decode()
    assert "Auto-assignment is off." in page  # the flash message of the last change


def test_the_page_shows_the_state_and_the_buttons_that_apply(boss_client, account, boss):
    page = boss_client.get(QUEUE).content.decode()
    assert 'id="auto-assign-state"' in page and "Waiting customers stay in the queue until someone assigns them." in page
    assert 'id="auto-assign-on"' in page and 'id="auto-assign-pause"' not in page

    boss_client.post(SWITCH, {"state": "on", "strategy": "least_loaded"})
    page = boss_client.get(QUEUE).content.decode()
    assert "below 3 sessions: Least loaded agent." in page and "It runs with the next queue refresh." in page
    assert 'id="auto-assign-pause"' in page and 'id="auto-assign-off"' in page and 'id="auto-assign-on"' not in page

    boss_client.post(SWITCH, {"state": "paused", "strategy": "least_loaded"})
    page = boss_client.get(QUEUE).content.decode()
    assert f"Paused by {boss.username}" in page and 'id="auto-assign-resume"' in page


def test_the_status_polls_by_itself_and_reports_the_last_run(boss_client, account, emulator):
    emulated_agent(account, emulator, "alice")
    emulator.customer(openid="o_c1")
    boss_client.post(SWITCH, {"state": "on", "strategy": "least_loaded"})
    queue_sync(account_id=account.pk)

    response = boss_client.get(QUEUE, **htmx("auto-assign-status"))

    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert 'id="auto-assign-status"' in body and 'id="auto-assign"' not in body
    assert "1 assigned, 0 refused by WeChat" in body
    assert "<form" not in body  # the switch is outside the refreshed part


def test_the_htmx_switch_answers_with_the_panel_and_the_message(boss_client, account):
    response = boss_client.post(SWITCH, {"state": "on", "strategy": "least_loaded"}, **htmx("auto-assign"))

    body = response.content.decode()
    assert response.status_code == 200 and "<html" not in body
    assert 'id="auto-assign"' in body and 'id="auto-assign-pause"' in body
    assert "Auto-assignment is on" in body  # the message, out of band
    assert setting(account).state == "on"


def test_bad_input_changes_nothing_and_says_so(boss_client, account):
    response = boss_client.post(SWITCH, {"state": "sometimes", "strategy": "least_loaded"})
    assert response.status_code == 400
    assert "Choose on, pause or off." in response.content.decode()

    response = boss_client.post(SWITCH, {"state": "on", "strategy": "whoever"}, **htmx("auto-assign"))
    assert response.status_code == 400 and 'id="auto-assign"' in response.content.decode()
    assert "whoever is not one of the available choices" in response.content.decode()

    assert setting(account) is None
    assert not AuditEvent.objects.filter(action="auto_assign_update").exists()


def test_anonymous_visitors_are_sent_to_log_in(client, account):
    assert sent_to_login(client.post(SWITCH, {"state": "on", "strategy": "least_loaded"}))
    assert sent_to_login(client.post(SWITCH, {"state": "on", "strategy": "least_loaded"}, **htmx("auto-assign")), htmx=True)
    assert setting(account) is None


@pytest.mark.parametrize("make_user", [agent_user, auditor])
def test_agents_and_auditors_may_not_switch_it(client, account, make_user):
    client.force_login(make_user(account))
    assert client.post(SWITCH, {"state": "on", "strategy": "least_loaded"}).status_code == 403
    assert setting(account) is None


def test_an_agent_sees_the_state_without_the_switch(client, account):
    AutoAssign.objects.create(official_account=account, state="on")
    client.force_login(agent_user(account))
    page = client.get(QUEUE).content.decode()
    assert 'id="auto-assign-state"' in page and "Least loaded agent" in page
    assert SWITCH not in page


def test_another_accounts_supervisor_switches_only_their_own(client, account):
    intruder = outsider()
    client.force_login(intruder)

    assert client.post(SWITCH, {"state": "on", "strategy": "least_loaded"}).status_code == 302

    assert setting(account) is None
    theirs = AutoAssign.objects.get()
    assert theirs.official_account != account and theirs.official_account.name == "Another shop"


def test_only_post_switches(boss_client, account):
    assert boss_client.get(SWITCH).status_code == 405
    assert setting(account) is None

