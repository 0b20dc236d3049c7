"""A history run whose Celery worker is SIGKILLed: real worker processes (prefork
pool) on the Redis broker of CELERY_BROKER_URL, the emulator made slow so the kill
lands mid-run. The run must finish with every record stored once, taken over one
short lease after the kill (not 15 minutes later)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from accounts.models import SyncState
from accounts.selectors import sync_rows
from kfadmin.celery import app
from messaging.models import MessageRecord
from messaging.tasks import sync_history_task
from tests.messaging.history_helpers import (
    MSGLIST_PATH,
    archive_records,
    at,
    emulator_records,
    now_s,
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.CELERY_BROKER_URL.startswith("redis://"),
        reason="needs the Redis broker: set CELERY_BROKER_URL=redis://…",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
DAYS = 6
LEASE_SECONDS = 4  # short, so the test waits seconds for the takeover, not a minute
PATIENCE_SECONDS = 120  # how long to wait for the workers before declaring them stuck


def _database_url() -> str:
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Workers:
    """`celery worker` processes (prefork, one pool child each) on the test database."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        env = {
            **os.environ,
            "DATABASE_URL": _database_url(),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "SYNC_LEASE_SECONDS": str(LEASE_SECONDS),
            "WECHAT_TIMEOUT": "3",
            "LOG_LEVEL": "INFO",
        }
        number = len(self.processes) + 1
        log = (self.log_dir / f"worker{number}.log").open("wb")
        process = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "kfadmin", "worker", "--pool", "prefork",
                "--concurrency", "1", "--queues", "sync", "--hostname", f"killed{number}@%h",
                "--without-mingle", "--without-gossip", "--loglevel", "INFO",
            ],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.processes.append(process)
        return process

    def pool_child(self, process: subprocess.Popen) -> int:
        """The pid of the worker's pool process (the one that runs tasks)."""
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        assert len(children) == 1, f"expected one pool child, found {children}"
        return int(children[0])

    def log(self) -> str:
        return "\n".join(path.read_text(errors="replace") for path in sorted(self.log_dir.glob("worker*.log")))

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


def _purge_sync_queue() -> None:
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        channel.queue_declare(queue="sync", durable=True, auto_delete=False)
        channel.queue_purge("sync")
        # Messages a killed worker held: Redis would hand them out again after the
        # visibility timeout, to some later test's worker.
        channel.client.delete(channel.unacked_key, channel.unacked_index_key)


@pytest.fixture
def workers(tmp_path) -> Iterator[Workers]:
    _purge_sync_queue()
    started = Workers(tmp_path)
    try:
        yield started
    finally:
        started.stop_all()
        _purge_sync_queue()


@pytest.fixture
def slow_history(kf_account_row, emulator):
    """Six days of history (one page per 24-hour window) and getmsglist answering
    slowly, so a run takes several seconds."""
    now = now_s()
    start = now - DAYS * 86400
    emulator.control("generate_records", count=6000, start=start, end=now - 120, seed=41)
    emulator.control("add_fault", kind="slow", delay=0.7, path_prefix=MSGLIST_PATH)
    SyncState.objects.create(official_account=kf_account_row, job=SyncState.Job.HISTORY, cursor=at(start))
    return kf_account_row


def _wait_for(condition: Callable[[], object], what: str, workers: Workers) -> object:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"{what}: not within {PATIENCE_SECONDS} s. Worker log:\n{workers.log()[-6000:]}")


def _history(account) -> SyncState:
    return SyncState.objects.get(official_account=account, job=SyncState.Job.HISTORY)


def _mid_run(account) -> bool:
    state = _history(account)
    return bool(state.running_token) and (state.progress or {}).get("windows_done", 0) >= 2


def _finished(account) -> bool:
    state = _history(account)
    return not state.running_token and (state.progress or {}).get("state") == "done"


def _assert_every_record_stored_once(account, emulator) -> None:
    assert archive_records(account) == emulator_records(emulator)
    assert MessageRecord.objects.filter(official_account=account).count() == 6000


def test_a_history_run_whose_pool_process_is_killed_is_redelivered_and_taken_over(
    slow_history, emulator, workers
):
    account = slow_history
    worker = workers.start()
    sync_history_task.delay(account.pk)
    _wait_for(lambda: _mid_run(account), "the run to get two windows in", workers)
    killed = _history(account)

    os.kill(workers.pool_child(worker), signal.SIGKILL)

    # The worker requeues the message (reject_on_worker_lost); the redelivery waits
    # out the dead run's lease, then takes the claim over and resumes at the cursor.
    _wait_for(lambda: _finished(account), "the redelivered run to finish", workers)
    done = _history(account)
    assert done.running_since is None and done.last_success_at > killed.heartbeat_at
    # It resumed at the cursor the dead run had reached, not at the beginning.
    assert datetime.fromisoformat(done.progress["from"]) >= killed.cursor > at(now_s() - DAYS * 86400)
    _assert_every_record_stored_once(account, emulator)
    log = workers.log()
    assert "WorkerLostError" in log or "exited with 'signal 9 (SIGKILL)'" in log
    assert "took over a claim" in log


def test_after_the_whole_worker_is_killed_the_run_shows_stopped_and_the_next_run_takes_over(
    slow_history, emulator, workers
):
    account = slow_history
    first = workers.start()
    sync_history_task.delay(account.pk)
    _wait_for(lambda: _mid_run(account), "the run to get two windows in", workers)
    stored_before = MessageRecord.objects.filter(official_account=account).count()

    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)

    # No sign of life for one lease: the sync page stops calling it running.
    row = _wait_for(
        lambda: next((r for r in sync_rows(account=account) if r.job == "history" and r.is_stopped), None),
        "the dead run to be shown as stopped",
        workers,
    )
    assert not row.is_running and row.eta_minutes is None
    assert 0 < stored_before < 6000

    workers.start()
    sync_history_task.delay(account.pk)  # the next beat tick

    _wait_for(lambda: _finished(account), "the next run to take over and finish", workers)
    _assert_every_record_stored_once(account, emulator)
    assert _history(account).cursor >= at(now_s() - 120)
