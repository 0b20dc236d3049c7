"""The sync status page: per-job health, "Sync now", polling while something runs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import tasks as account_tasks
from accounts.models import AuditEvent
from tests.factories import (
    AuditEventFactory,
    OfficialAccountFactory,
    SyncStateFactory,
    agent_user,
    auditor,
    outsider,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_cookie")]

HTMX = {"HX-Request": "true"}


@pytest.fixture
def account():
    return OfficialAccountFactory()


@pytest.fixture
def queued(monkeypatch):
    sent: list[int] = []
    monkeypatch.setattr(account_tasks.sync_agents_task, "delay", lambda account_id: sent.append(account_id))
    return sent


def test_it_shows_every_job_with_its_last_success_lag_and_error(boss_client, account):
    now = timezone.now()
    SyncStateFactory(official_account=account, job="agents", last_success_at=now - timedelta(minutes=1))
    SyncStateFactory(
        official_account=account, job="online", last_success_at=now - timedelta(hours=2),
        last_error_at=now - timedelta(minutes=1), last_error="WeChat is busy right now. Try again in a few seconds.",
    )

    response = boss_client.get(reverse("accounts:sync"))

    html = response.content.decode()
    assert response.status_code == 200
    for label in ("Agents", "Online list", "Waiting queue", "Sessions", "Chat history", "History backfill"):
        assert label in html
    assert "up to date" in html and "failing" in html and "WeChat is busy" in html and "never ran" in html
    assert "2\xa0hours ago" in html or "2 hours ago" in html


def test_with_no_job_running_the_table_still_refreshes_itself_slowly(boss_client, account):
    SyncStateFactory(official_account=account, job="agents", last_success_at=timezone.now())

    html = boss_client.get(reverse("accounts:sync")).content.decode()

    table_tag = html.split('id="sync-table"')[1].split(">")[0]
    assert 'hx-get="/sync/"' in table_tag and 'hx-trigger="every 15s"' in table_tag


def test_a_running_job_makes_the_table_poll_and_shows_backfill_progress(boss_client, account):
    SyncStateFactory(
        official_account=account, job="backfill", running_since=timezone.now(),
        running_token="a-run", heartbeat_at=timezone.now(), lease_until=timezone.now() + timedelta(minutes=1),
        progress={"state": "running", "percent": 40.2, "windows_done": 12, "windows_total": 30,
                  "records_stored": 123456, "eta_seconds": 250},
    )

    html = boss_client.get(reverse("accounts:sync"), headers=HTMX).content.decode()

    assert html.lstrip().startswith('<section id="sync-table"')
    assert 'hx-trigger="every 3s"' in html
    assert "running" in html and "40%" in html and "day 12 of 30" in html
    assert "123,456 records stored" in html and "about 5\xa0minutes left" in html


def test_a_run_whose_heartbeat_stopped_is_shown_as_stopped_without_an_estimate(boss_client, account):
    # The history run of a SIGKILLed worker: 83% done, its last renewal 2 minutes ago.
    now = timezone.now()
    last_renewal = now - timedelta(minutes=2)
    SyncStateFactory(
        official_account=account, job="history", running_since=now - timedelta(minutes=5),
        running_token="dead-run", heartbeat_at=last_renewal, lease_until=last_renewal + timedelta(seconds=60),
        progress={"state": "running", "percent": 83.0, "windows_done": 2, "windows_total": 3, "eta_seconds": 50},
    )

    html = boss_client.get(reverse("accounts:sync"), headers=HTMX).content.decode()

    row = html.split('id="sync-history"')[1].split("</tr>")[0]
    since = timezone.localtime(last_renewal).strftime("%H:%M:%S")
    assert "stopped" in row and f"no sign of life since {since} — the next run takes over" in row
    assert "running" not in row and "min left" not in row
    assert "83%" in row  # how far it got before it stopped
    assert "disabled" not in row  # Sync now starts the run that takes over
    assert 'hx-trigger="every 3s"' not in html


def test_a_run_renewing_its_lease_is_running_however_long_ago_it_started(boss_client, account):
    now = timezone.now()
    SyncStateFactory(
        official_account=account, job="history", running_since=now - timedelta(hours=3),
        running_token="live-run", heartbeat_at=now - timedelta(seconds=5), lease_until=now + timedelta(seconds=55),
        progress={"state": "running", "percent": 50.0, "eta_seconds": 600},
    )

    html = boss_client.get(reverse("accounts:sync"), headers=HTMX).content.decode()

    row = html.split('id="sync-history"')[1].split("</tr>")[0]
    assert "running" in row and "about 10\xa0minutes left" in row and "stopped" not in row
    assert 'hx-trigger="every 3s"' in html


def test_a_finished_backfill_says_so_and_stops_polling(boss_client, account):
    SyncStateFactory(
        official_account=account, job="backfill", running_since=None,
        progress={"state": "done", "percent": 100.0, "windows_done": 30, "windows_total": 30, "records_stored": 9},
    )

    html = boss_client.get(reverse("accounts:sync"), headers=HTMX).content.decode()

    assert "Finished." in html and "100%" in html
    assert 'hx-trigger="every 3s"' not in html


def test_sync_now_queues_the_task_and_redirects(boss_client, account, queued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = boss_client.post(reverse("accounts:sync_run", args=["agents"]))

    assert response.status_code == 302 and response["Location"] == reverse("accounts:sync")
    assert queued == [account.pk]
    assert AuditEvent.objects.get(action="sync_run").target == "agents"


def test_sync_now_with_htmx_shows_it_queued_and_polls_until_it_starts(boss_client, account, queued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = boss_client.post(reverse("accounts:sync_run", args=["agents"]), headers=HTMX)

    html = response.content.decode()
    assert "queued" in html and 'hx-trigger="every 3s"' in html
    assert "sync queued" in html  # the flash message, out of band
    assert queued == [account.pk]

    # The worker started (and finished) it: polling stops.
    now = timezone.now()
    SyncStateFactory(official_account=account, job="agents", last_started_at=now, last_success_at=now)
    html = boss_client.get(reverse("accounts:sync"), headers=HTMX).content.decode()
    assert 'hx-trigger="every 3s"' not in html


def test_a_request_older_than_two_minutes_no_longer_counts_as_queued(boss_client, account):
    AuditEventFactory(official_account=account, action="sync_run", target="agents", at=timezone.now() - timedelta(minutes=3))

    html = boss_client.get(reverse("accounts:sync"), headers=HTMX).content.decode()

    assert 'hx-trigger="every 3s"' not in html


def test_another_accounts_request_does_not_show_here(boss_client):
    AuditEventFactory(official_account=OfficialAccountFactory(), action="sync_run", target="agents")

    assert "queued" not in boss_client.get(reverse("accounts:sync")).content.decode()


def test_an_unknown_job_is_a_404(boss_client):
    assert boss_client.post(reverse("accounts:sync_run", args=["nonsense"])).status_code == 404


def test_a_job_without_a_task_says_so(boss_client):
    response = boss_client.post(reverse("accounts:sync_run", args=["backfill"]), follow=True)

    assert "cannot be started by hand" in response.content.decode()


@pytest.mark.parametrize("persona", [agent_user, auditor])
@pytest.mark.parametrize("headers", [{}, HTMX])
def test_only_supervisors_see_or_start_syncs(client, account, queued, persona, headers):
    client.force_login(persona(account))

    assert client.get(reverse("accounts:sync"), headers=headers).status_code == 403
    assert client.post(reverse("accounts:sync_run", args=["agents"]), headers=headers).status_code == 403
    assert queued == []


def test_an_outsider_starts_syncs_only_for_their_own_account(client, account, queued, django_capture_on_commit_callbacks):
    person = outsider()
    client.force_login(person)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("accounts:sync_run", args=["agents"]))

    assert queued == [person.memberships.get().official_account_id]
    assert account.pk not in queued


def test_sync_pages_need_a_login(client):
    assert client.get(reverse("accounts:sync")).status_code == 302
    assert client.post(reverse("accounts:sync_run", args=["agents"])).status_code == 302


def test_sync_now_refuses_get_and_the_page_refuses_post(boss_client):
    assert boss_client.get(reverse("accounts:sync_run", args=["agents"])).status_code == 405
    assert boss_client.post(reverse("accounts:sync")).status_code == 405


def test_a_live_tail_paused_by_wechat_says_until_when(boss_client, account):
    now = timezone.now()
    SyncStateFactory(
        official_account=account, job="tail", last_success_at=now - timedelta(minutes=3),
        last_error_at=now, paused_until=now + timedelta(minutes=15),
        last_error="The daily call quota for this WeChat API is used up. Wait until tomorrow or "
        "reset the quota in the official account platform.",
    )

    html = boss_client.get(reverse("accounts:sync")).content.decode()

    row = html.split('id="sync-tail"', 1)[1].split("</tr>", 1)[0]
    assert "Live messages" in row and "paused" in row and "the next run is after" in row
    assert "The daily call quota for this WeChat API is used up." in row
    assert "while a session is open" in row
    assert "Sync now" not in row  # the tail runs by itself
