"""Large exports as background jobs: the decision to stream or queue, the job run by a
real Celery worker through the Redis broker, progress, the download (who may, and
its audit), failures that say so, and the cleanup that removes files later."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from messaging import services
from messaging.models import ExportJob, MessageRecord, record_digest
from messaging.selectors import RecordFilter
from messaging.services import (
    EXPORT_NO_WORKER,
    EXPORT_NOT_QUEUED,
    EXPORT_WORKER_LOST,
    EXPORT_WRITE_FAILED,
    export_job_create,
    export_job_path,
    export_job_run,
    export_jobs_clean,
)
from tests.factories import (
    AgentFactory,
    agent_user,
    auditor,
    aware,
    outsider,
    sent_to_login,
    supervisor,
)
from tests.messaging.broker_helpers import broker_unreachable
from tests.sessions_app.test_views_support import archive, htmx
from tests.test_celery import worker  # noqa: F401  (the real worker fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english_default")]

CSV = reverse("messaging:export", args=["csv"])
JSONL = reverse("messaging:export", args=["jsonl"])
EXPORTS = reverse("messaging:exports")


def download_url(job: ExportJob) -> str:
    return reverse("messaging:export_download", args=[job.pk])


@pytest.fixture(autouse=True)
def export_settings(settings, tmp_path):
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.EXPORT_STREAM_MAX_ROWS = 3
    settings.EXPORT_KEEP_HOURS = 24
    return settings


@pytest.fixture
def account(emulator):
    from tests.sessions_app.test_views_support import wired_account

    return wired_account(emulator)


def many(account, n: int, *, kf: str = "", text: str = "退款进度") -> None:
    start = aware(2025, 3, 1, 9)
    MessageRecord.objects.bulk_create(
        MessageRecord(
            official_account=account, time=start + timedelta(seconds=i), worker=kf, openid=f"o_{i % 7}",
            opercode=2002 if kf else 2001, text=f"{text} {i}",
            digest=record_digest(kf, f"o_{i % 7}", 2002 if kf else 2001, f"{text} {i}"), seq=0,
        )
        for i in range(n)
    )


def finished_job(account, user, **filters) -> ExportJob:
    """A job created and run in process (the service the task calls)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "export_job_enqueue", lambda job_id: True)
        job = export_job_create(account=account, actor=user, export_format="csv", filters=RecordFilter(**filters))
    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    return job


def csv_body(response) -> list[list[str]]:
    data = b"".join(response.streaming_content).decode("utf-8")
    assert data.startswith("\ufeff")
    return list(csv.reader(io.StringIO(data[1:])))


# ------------------------------------------------------------------ stream or queue


def test_an_export_up_to_the_threshold_still_streams(boss_client, account):
    many(account, 3)
    response = boss_client.get(CSV)
    assert response.streaming and len(csv_body(response)) == 4
    assert not ExportJob.objects.exists()


def test_a_larger_export_asks_to_be_prepared_in_the_background_and_writes_nothing(boss_client, account):
    many(account, 4)
    response = boss_client.get(CSV, {"q": "退款"})
    assert response.status_code == 200 and not response.streaming
    page = response.content.decode()
    assert "This search matches more than 3 records" in page
    assert "Prepare the CSV export" in page
    assert f'action="{CSV}?q=%E9%80%80%E6%AC%BE"' in page
    assert not ExportJob.objects.exists()
    assert not AuditEvent.objects.filter(action="history_export").exists()


def test_preparing_queues_a_job_with_the_filters_and_audits_the_request(boss_client, boss, account, monkeypatch):
    queued: list[int] = []
    monkeypatch.setattr(services, "export_job_enqueue", lambda job_id: queued.append(job_id) or True)
    many(account, 4)
    with_commit = boss_client.post(f"{CSV}?q=退款&since=2025-03-01&kinds=customer")
    assert with_commit.status_code == 302 and with_commit["Location"] == EXPORTS
    job = ExportJob.objects.get()
    assert (job.requested_by, job.export_format, job.status) == (boss, "csv", "queued")
    assert job.filters == {"q": "退款", "since": "2025-03-01T00:00:00+08:00", "kinds": ["customer"]}
    event = AuditEvent.objects.get(action="history_export")
    assert event.params["job"] == job.pk and event.params["q"] == "退款" and event.target == "csv"


def test_the_job_is_enqueued_only_after_the_request_commits(boss_client, account, django_capture_on_commit_callbacks, monkeypatch):
    queued: list[int] = []
    monkeypatch.setattr(services.celery_app, "send_task", lambda name, args: queued.append((name, args)))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        boss_client.post(JSONL)
    assert queued == []
    for callback in callbacks:
        callback()
    job = ExportJob.objects.get()
    assert queued == [("messaging.tasks.export_history_task", (job.pk,))]


def test_invalid_filters_queue_nothing(boss_client, account):
    response = boss_client.post(f"{CSV}?since=not-a-date")
    assert response.status_code == 302 and response["Location"].startswith(reverse("messaging:history"))
    assert not ExportJob.objects.exists()


def test_exports_accept_get_and_post_only(boss_client):
    assert boss_client.put(CSV).status_code == 405
    assert boss_client.delete(CSV).status_code == 405


def test_an_unreachable_broker_fails_the_job_with_a_sentence(boss_client, account, django_capture_on_commit_callbacks):
    with broker_unreachable(), django_capture_on_commit_callbacks(execute=True):
        boss_client.post(CSV)
    job = ExportJob.objects.get()
    assert (job.status, job.error) == ("failed", EXPORT_NOT_QUEUED)
    page = boss_client.get(EXPORTS).content.decode()
    assert "The task queue could not be reached, so the export was not started." in page


# ------------------------------------------------------------------ the job, with a real worker


def test_a_real_worker_prepares_the_export_and_the_requester_downloads_it(
    client, account, worker, wait_until, django_capture_on_commit_callbacks  # noqa: F811
):
    boss = supervisor(account)
    client.force_login(boss)
    many(account, 2500)
    archive(account, "o_x", "=SUM(A1)", at=aware(2025, 3, 2, 9))
    with django_capture_on_commit_callbacks(execute=True):
        client.post(CSV)
    job = ExportJob.objects.get()
    wait_until(lambda: ExportJob.objects.filter(pk=job.pk, status="done").exists(), timeout=60)
    assert worker.finished("messaging.tasks.export_history_task")
    job.refresh_from_db()
    assert (job.rows_total, job.rows_written) == (2501, 2501)
    assert job.expires_at - job.finished_at == timedelta(hours=24)
    assert export_job_path(job).stat().st_size == job.size_bytes
    assert not list(Path(export_job_path(job).parent).glob("*.part"))

    listing = client.get(EXPORTS).content.decode()
    assert "2,501 records" in listing and download_url(job) in listing

    response = client.get(download_url(job))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="kfadmin-history-')
    rows = csv_body(response)
    assert rows[0] == ["time", "kind", "opercode", "agent", "openid", "text", "customer"]
    assert len(rows) == 2502
    assert rows[1] == ["2025-03-01T09:00:00+08:00", "customer", "2001", "", "o_0", "退款进度 0", ""]
    assert rows[-1][5] == "'=SUM(A1)"  # the formula guard, as in the streamed export
    downloaded = AuditEvent.objects.get(action="history_export_download")
    assert (downloaded.actor, downloaded.target, downloaded.params["job"], downloaded.params["rows"]) == (
        boss, "csv", job.pk, 2501)


def test_a_job_delivered_twice_is_written_once(account, worker, wait_until):  # noqa: F811
    from messaging.tasks import export_history_task

    many(account, 10)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "export_job_enqueue", lambda job_id: True)
        job = export_job_create(account=account, actor=None, export_format="jsonl", filters=RecordFilter())
    export_history_task.delay(job.pk)
    export_history_task.delay(job.pk)
    runs = wait_until(lambda: len(worker.finished("messaging.tasks.export_history_task")) == 2
                      and worker.finished("messaging.tasks.export_history_task"))
    assert sorted(retval is None for _, retval in runs) == [False, True]
    job.refresh_from_db()
    assert job.status == "done" and job.rows_written == 10
    assert len(list(Path(export_job_path(job).parent).iterdir())) == 1


def test_the_page_polls_and_shows_progress_while_a_job_runs(boss_client, account, boss):
    job = ExportJob.objects.create(
        official_account=account, requested_by=boss, export_format="csv", status="running",
        rows_total=1_000_000, rows_written=250_000, started_at=timezone.now(), heartbeat_at=timezone.now(),
    )
    page = boss_client.get(EXPORTS).content.decode()
    assert 'hx-trigger="every 2s"' in page
    assert '<progress class="progress" max="100" value="25"' in page
    assert "250,000 of 1,000,000 records written" in page
    assert download_url(job) not in page

    fragment = boss_client.get(EXPORTS, **htmx("export-jobs"))
    body = fragment.content.decode()
    assert body.lstrip().startswith('<section id="export-jobs"') and "<html" not in body


def test_the_page_stops_polling_when_nothing_runs(boss_client, account, boss):
    finished_job(account, boss)
    assert "hx-trigger" not in boss_client.get(EXPORTS).content.decode().split('id="export-jobs"')[1].split(">")[0]


def test_the_page_says_when_there_are_no_exports(boss_client, account):
    assert "No exports yet." in boss_client.get(EXPORTS).content.decode()


def test_a_file_that_cannot_be_written_fails_the_job_and_leaves_nothing(account, boss_client, boss, settings, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    settings.EXPORT_ROOT = blocker  # its subfolder cannot be created
    many(account, 5)
    job = finished_job(account, boss)
    assert (job.status, job.error) == ("failed", EXPORT_WRITE_FAILED)
    page = boss_client.get(EXPORTS).content.decode()
    assert "The export file could not be written" in page and download_url(job) not in page
    assert boss_client.get(download_url(job)).status_code == 302


def test_the_failure_sentence_is_shown_in_chinese(client, account):
    boss = supervisor(account)
    ExportJob.objects.create(official_account=account, requested_by=boss, export_format="csv", status="failed",
                             error=EXPORT_WORKER_LOST)
    client.force_login(boss)
    client.cookies["django_language"] = "zh-hans"
    page = client.get(EXPORTS).content.decode()
    assert EXPORT_WORKER_LOST not in page and "导出" in page


# ------------------------------------------------------------------ who may download


@pytest.fixture
def agents_job(account):
    alice = AgentFactory(official_account=account, kf_account="alice@test_oa")
    many(account, 4, kf=alice.kf_account, text="alice")
    many(account, 4, kf="bob@test_oa", text="bob")
    requester = agent_user(account, agent=alice, username="alice")
    return finished_job(account, requester, agent=alice.kf_account), requester


def test_the_requesting_agent_downloads_their_own_export(client, agents_job):
    job, requester = agents_job
    client.force_login(requester)
    rows = csv_body(client.get(download_url(job)))
    assert [row[3] for row in rows[1:]] == ["alice@test_oa"] * 4


def test_an_agents_export_sees_only_their_conversations_even_when_posted_directly(client, account):
    alice = AgentFactory(official_account=account, kf_account="alice@test_oa")
    many(account, 4, kf="bob@test_oa", text="bob")
    client.force_login(agent_user(account, agent=alice))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "export_job_enqueue", lambda job_id: True)
        client.post(f"{CSV}?agent=")
    job = ExportJob.objects.get()
    assert job.filters == {"agent": "alice@test_oa"}
    export_job_run(job_id=job.pk)
    job.refresh_from_db()
    assert job.rows_written == 0


@pytest.mark.parametrize("persona", [supervisor, auditor], ids=["supervisor", "auditor"])
def test_supervisors_and_auditors_of_the_account_may_download_any_export(client, account, agents_job, persona):
    job, requester = agents_job
    reader = persona(account)
    client.force_login(reader)
    assert download_url(job) in client.get(EXPORTS).content.decode()
    assert len(csv_body(client.get(download_url(job)))) == 5
    assert AuditEvent.objects.get(action="history_export_download").actor == reader


def test_another_agent_neither_sees_nor_downloads_it(client, account, agents_job):
    job, _ = agents_job
    client.force_login(agent_user(account, username="carol"))
    assert download_url(job) not in client.get(EXPORTS).content.decode()
    assert client.get(download_url(job)).status_code == 404
    assert not AuditEvent.objects.filter(action="history_export_download").exists()


def test_another_accounts_supervisor_gets_not_found(client, agents_job):
    job, _ = agents_job
    client.force_login(outsider())
    assert client.get(download_url(job)).status_code == 404


def test_the_download_and_the_page_require_login(client, agents_job):
    job, _ = agents_job
    assert sent_to_login(client.get(download_url(job)))
    assert sent_to_login(client.get(EXPORTS))
    assert sent_to_login(client.get(EXPORTS, **htmx("export-jobs")), htmx=True)


def test_the_download_accepts_only_get(boss_client, agents_job):
    job, _ = agents_job
    assert boss_client.post(download_url(job)).status_code == 405


# ------------------------------------------------------------------ keeping and removing


def test_an_expired_export_is_refused_and_the_cleanup_removes_its_file(boss_client, account, boss):
    many(account, 5)
    job = finished_job(account, boss)
    path = export_job_path(job)
    assert path.exists()

    assert export_jobs_clean(now=job.expires_at - timedelta(minutes=1)).expired == 0
    assert path.exists()

    ExportJob.objects.filter(pk=job.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = boss_client.get(download_url(job))
    assert response.status_code == 302 and response["Location"] == EXPORTS
    assert not AuditEvent.objects.filter(action="history_export_download").exists()

    result = export_jobs_clean()
    assert result.expired == 1 and not path.exists()
    job.refresh_from_db()
    assert job.status == "expired"
    assert "Removed after 24 hours" in boss_client.get(EXPORTS).content.decode()


def test_the_cleanup_fails_a_job_whose_worker_went_silent_and_removes_its_partial_file(account, boss):
    silent = timezone.now() - timedelta(minutes=11)
    job = ExportJob.objects.create(official_account=account, requested_by=boss, export_format="csv",
                                   status="running", file_name=f"{account.pk}/abc.csv", heartbeat_at=silent)
    partial = export_job_path(job).with_name("abc.csv.part")
    partial.parent.mkdir(parents=True)
    partial.write_text("half a file")
    alive = ExportJob.objects.create(official_account=account, requested_by=boss, export_format="csv",
                                     status="running", heartbeat_at=timezone.now())

    assert export_jobs_clean().stale == 1

    job.refresh_from_db()
    assert (job.status, job.error) == ("failed", EXPORT_WORKER_LOST)
    assert not partial.exists()
    assert ExportJob.objects.get(pk=alive.pk).status == "running"


def test_a_running_job_failed_by_the_cleanup_stops_writing(account, boss, monkeypatch):
    many(account, 5)
    monkeypatch.setattr(services, "EXPORT_PROGRESS_ROWS", 1000)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(services, "export_job_enqueue", lambda job_id: True)
        job = export_job_create(account=account, actor=boss, export_format="csv", filters=RecordFilter())
    many(account, 995, text="more")
    real_progress = services._export_job_progress

    def cleanup_meanwhile(job_id: int, written: int) -> None:
        ExportJob.objects.filter(pk=job_id).update(status="failed", error=EXPORT_WORKER_LOST)
        real_progress(job_id, written)

    monkeypatch.setattr(services, "_export_job_progress", cleanup_meanwhile)
    assert export_job_run(job_id=job.pk) is None
    job.refresh_from_db()
    assert job.status == "failed"
    assert not any(Path(services.settings.EXPORT_ROOT).rglob("*.csv*"))


def test_the_cleanup_fails_jobs_no_worker_took(account, boss):
    old = ExportJob.objects.create(official_account=account, requested_by=boss, export_format="csv",
                                   created_at=timezone.now() - timedelta(hours=2))
    fresh = ExportJob.objects.create(official_account=account, requested_by=boss, export_format="csv")
    assert export_jobs_clean().unclaimed == 1
    old.refresh_from_db()
    assert (old.status, old.error) == ("failed", EXPORT_NO_WORKER)
    assert ExportJob.objects.get(pk=fresh.pk).status == "queued"


def test_the_cleanup_runs_from_beat(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["export-cleanup"]
    assert entry["task"] == "messaging.tasks.export_cleanup_task"
    assert 0 < entry["options"]["expires"] <= entry["schedule"]
