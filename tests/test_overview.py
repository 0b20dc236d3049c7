"""The overview (home page) and its polled fragment."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import SyncState
from kfadmin.overview import day_bounds, overview_get
from tests.factories import (
    AgentFactory,
    KfSessionFactory,
    MessageRecordFactory,
    OfficialAccountFactory,
    SyncStateFactory,
    agent_user,
    auditor,
    aware,
    outsider,
    sent_to_login,
    supervisor,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_cookie")]

HTMX = {"HX-Request": "true"}


@pytest.fixture
def account():
    return OfficialAccountFactory(agent_capacity=4, waiting_count=0)


@pytest.fixture
def fresh_sync(account):
    for job in ("agents", "online", "queue", "sessions", "history"):
        SyncStateFactory(official_account=account, job=job)


# --------------------------------------------------------------------------- numbers


def test_it_counts_agents_online_and_in_total(account):
    AgentFactory(official_account=account, online_status=1)
    AgentFactory(official_account=account, online_status=1)
    AgentFactory(official_account=account, online_status=0)
    AgentFactory(official_account=account, online_status=1, deleted_at=timezone.now())
    AgentFactory(online_status=1)  # another official account

    overview = overview_get(account=account)

    assert (overview.agents_online, overview.agents_total) == (2, 3)


def test_the_queue_length_is_wechats_count_and_the_longest_wait_the_oldest_waiting(account):
    now = timezone.now()
    account.waiting_count = 130  # WeChat lists at most 100 of them
    KfSessionFactory(official_account=account, created_at=now - timedelta(minutes=7))
    KfSessionFactory(official_account=account, created_at=now - timedelta(minutes=2))
    KfSessionFactory(official_account=account, state="open", created_at=now - timedelta(hours=3), agent=AgentFactory(official_account=account))

    overview = overview_get(account=account, now=now)

    assert overview.waiting == 130
    assert overview.longest_wait == timedelta(minutes=7)
    assert overview.open_sessions == 1


def test_the_queue_length_falls_back_to_local_rows_before_any_queue_sync(account):
    KfSessionFactory(official_account=account)

    assert overview_get(account=account).waiting == 1


def test_messages_today_count_customer_and_agent_messages_in_the_accounts_time_zone(account):
    now = aware(2024, 5, 20, 9, 0)  # 09:00 in Shanghai is 01:00 UTC
    for code in (2001, 2003, 2003):
        MessageRecordFactory(official_account=account, opercode=code, time=aware(2024, 5, 20, 0, 30))
    MessageRecordFactory(official_account=account, opercode=2002, time=aware(2024, 5, 20, 8, 59))
    MessageRecordFactory(official_account=account, opercode=1001, time=aware(2024, 5, 20, 8, 0))
    # 23:59 the day before, Shanghai time (15:59 UTC on the 19th): yesterday.
    MessageRecordFactory(official_account=account, opercode=2003, time=aware(2024, 5, 19, 23, 59))
    MessageRecordFactory(opercode=2003, time=aware(2024, 5, 20, 1, 0))  # another account

    overview = overview_get(account=account, now=now)

    assert (overview.messages_in_today, overview.messages_out_today) == (3, 1)


def test_today_follows_the_accounts_own_time_zone():
    london = OfficialAccountFactory(time_zone="Europe/London")
    start, end = day_bounds(account=london, now=aware(2024, 5, 20, 3, 0))  # 20:00 on the 19th in London

    assert start == aware(2024, 5, 19, 0, 0, tz="Europe/London")
    assert end - start == timedelta(days=1)


def test_each_online_agent_gets_a_load_against_the_capacity(account):
    AgentFactory(official_account=account, online_status=1, accepted_case=1, kf_nick="light")
    AgentFactory(official_account=account, online_status=1, accepted_case=4, kf_nick="full")
    AgentFactory(official_account=account, online_status=0, accepted_case=0, kf_nick="away")

    loads = overview_get(account=account).loads

    assert [(load.agent.kf_nick, load.percent, load.level) for load in loads] == [
        ("full", 100, "full"),
        ("light", 25, "ok"),
    ]


def test_a_sync_older_than_three_intervals_lags(account, settings):
    now = timezone.now()
    settings.SYNC_ONLINE_SECONDS = 15
    SyncStateFactory(official_account=account, job="online", last_success_at=now - timedelta(minutes=5))
    SyncStateFactory(official_account=account, job="queue", last_success_at=now - timedelta(seconds=20))
    SyncStateFactory(official_account=account, job="sessions", last_success_at=now)

    overview = overview_get(account=account, now=now)

    assert [row.job for row in overview.lagging] == ["online"]
    assert overview.last_sync_at == now


def test_a_failed_last_run_is_reported(account):
    now = timezone.now()
    SyncStateFactory(
        official_account=account, job="agents", last_success_at=now - timedelta(minutes=1),
        last_error_at=now, last_error="WeChat is busy right now. Try again in a few seconds.",
    )

    assert [row.job for row in overview_get(account=account, now=now).failing] == ["agents"]


# --------------------------------------------------------------------------- the page


@pytest.mark.parametrize("persona", [supervisor, agent_user, auditor])
def test_every_role_sees_the_overview(client, account, fresh_sync, persona):
    AgentFactory(official_account=account, online_status=1, accepted_case=2, kf_nick="小王")
    client.force_login(persona(account))

    response = client.get(reverse("home"))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="overview"' in html and 'hx-trigger="every 5s"' in html
    assert "小王" in html and "2 / 4" in html
    assert "HX-Request" in response["Vary"]


def test_the_poll_gets_only_the_fragment(client, account, fresh_sync):
    client.force_login(supervisor(account))
    KfSessionFactory(official_account=account)

    response = client.get(reverse("home"), headers=HTMX)

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="overview"')
    assert "<html" not in html
    # Nothing to announce: the flash messages on screen are left alone.
    assert "hx-swap-oob" not in html


def test_a_history_restore_gets_the_whole_page(client, account):
    client.force_login(supervisor(account))

    html = client.get(reverse("home"), headers={**HTMX, "HX-History-Restore-Request": "true"}).content.decode()

    assert "<html" in html


def test_the_overview_says_what_to_do_before_the_first_sync(client, account):
    client.force_login(supervisor(account))

    html = client.get(reverse("home")).content.decode()

    assert "No sync has run yet" in html
    assert reverse("accounts:sync") in html
    assert "has no agents yet" in html and reverse("accounts:agent_add") in html


def test_the_empty_state_for_an_agent_does_not_offer_supervisor_actions(client, account):
    client.force_login(auditor(account))

    html = client.get(reverse("home")).content.decode()

    assert reverse("accounts:agent_add") not in html
    assert reverse("accounts:sync") not in html
    assert "A supervisor adds agents" in html


def test_the_overview_warns_when_sync_lags(client, account):
    SyncStateFactory(official_account=account, job="online", last_success_at=timezone.now() - timedelta(hours=1))
    client.force_login(supervisor(account))

    html = client.get(reverse("home"), headers=HTMX).content.decode()

    assert "Sync is lagging" in html and "Online list" in html


def test_the_overview_shows_no_agent_online_with_advice(client, account, fresh_sync):
    AgentFactory(official_account=account, online_status=0)
    client.force_login(supervisor(account))

    html = client.get(reverse("home")).content.decode()

    assert "No agent is online right now" in html


def test_times_show_in_the_accounts_time_zone(client, fresh_sync):
    account = OfficialAccountFactory(time_zone="America/New_York")
    SyncState.objects.create(official_account=account, job="online", last_success_at=aware(2024, 1, 2, 3, 4, tz="UTC"))
    client.force_login(supervisor(account))

    html = client.get(reverse("home")).content.decode()

    assert "2024-01-01 22:04:00" in html


def test_the_overview_shows_only_the_current_accounts_numbers(client, account, fresh_sync):
    AgentFactory(official_account=account, kf_nick="mine", online_status=1)
    client.force_login(outsider())

    html = client.get(reverse("home")).content.decode()

    assert "mine" not in html
    assert account.name not in html


def test_the_overview_needs_a_login(client):
    assert sent_to_login(client.get(reverse("home")))
    assert sent_to_login(client.get(reverse("home"), headers=HTMX), htmx=True)


def test_the_overview_refuses_post(client, account):
    client.force_login(supervisor(account))

    assert client.post(reverse("home")).status_code == 405


def test_a_user_without_an_official_account_is_told_so(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("lonely", password="x"))

    response = client.get(reverse("home"))

    assert response.status_code == 403
    assert "no official account" in response.content.decode()
