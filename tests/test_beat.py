"""Beat starts on a deployment without `var/`, and a worker whose embedded beat died
does not stay up pretending to be ready."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from kfadmin.beat import PersistentScheduler
from kfadmin.celery import app

ROOT = Path(__file__).resolve().parent.parent


def test_beat_is_kfadmins_scheduler():
    assert app.conf.beat_scheduler == settings.CELERY_BEAT_SCHEDULER == "kfadmin.beat:PersistentScheduler"


def test_beat_creates_the_folder_of_its_schedule_file(tmp_path):
    schedule = tmp_path / "var" / "not-yet" / "celerybeat-schedule"
    scheduler = PersistentScheduler(app=app, schedule_filename=str(schedule))
    try:
        assert "sync-online" in scheduler.schedule
    finally:
        scheduler.close()
    assert schedule.parent.is_dir() and any(schedule.parent.iterdir())


def test_a_worker_whose_beat_cannot_start_exits_with_status_1_saying_why(tmp_path):
    (tmp_path / "a-file").write_text("")
    schedule = tmp_path / "a-file" / "celerybeat-schedule"  # its folder cannot be made
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "kfadmin", "worker", "--beat", "-s", str(schedule),
         "--pool", "solo", "--queues", "beat-test-unused", "--loglevel", "INFO"],
        cwd=ROOT, env={**os.environ, "DJANGO_SETTINGS_MODULE": "kfadmin.settings"},
        capture_output=True, text=True, timeout=180,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert f"Celery beat cannot keep its schedule in {schedule}" in output
    assert "CRITICAL kfadmin.beat: Celery beat has stopped" in output
