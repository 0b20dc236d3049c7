"""The Celery side of syncing, run through the real machinery: a worker thread that
consumes from the Redis broker of CELERY_BROKER_URL, beat's start-up, the routes and
the schedule."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from fnmatch import fnmatch

import pytest
from celery.beat import Service
from celery.contrib.testing.worker import start_worker
from celery.signals import task_failure, task_postrun, task_retry
from django.conf import settings
from django.db import connection

from accounts.models import Agent, OfficialAccount, SyncState
from accounts.sync import sync_state_claim
from accounts.tasks import sync_agents_task, sync_all_agents_task, sync_all_online_task
from kfadmin.celery import app
from kfadmin.wechat import WeChatRateLimited
from sessions_app.models import KfSession
from tests.factories import OfficialAccountFactory

GETKFLIST = "/cgi-bin/customservice/getkflist"


def getkflist_calls(emulator) -> int:
    return len([c for c in emulator.calls if c.path == GETKFLIST])


# --------------------------------------------------------------------------- configuration


def test_every_sync_is_scheduled_with_an_expiry_no_longer_than_its_interval():
    app.loader.import_default_modules()
    schedule = settings.CELERY_BEAT_SCHEDULE
    expected = {
        "accounts.tasks.sync_all_online_task": settings.SYNC_ONLINE_SECONDS,
        "sessions_app.tasks.sync_all_queue_task": settings.SYNC_QUEUE_SECONDS,
        "sessions_app.tasks.sync_all_sessions_task": settings.SYNC_SESSIONS_SECONDS,
        "accounts.tasks.sync_all_agents_task": settings.SYNC_AGENTS_SECONDS,
        "messaging.tasks.sync_all_history_task": settings.SYNC_HISTORY_SECONDS,
        "messaging.tasks.sync_all_tail_task": settings.SYNC_TAIL_SECONDS,
        "messaging.tasks.sync_all_library_task": settings.SYNC_LIBRARY_SECONDS,
        "messaging.tasks.fetch_media_sweep_task": 300,
        "messaging.tasks.send_outbox_sweep_task": 30,
        "messaging.tasks.export_cleanup_task": 900,
        "reports.tasks.sync_rollups_sweep_task": 60,
    }
    assert {entry["task"]: entry["schedule"] for entry in schedule.values()} == expected
    for entry in schedule.values():
        assert entry["task"] in app.tasks, f"{entry['task']} is not a registered task"
        assert 0 < entry["options"]["expires"] <= entry["schedule"]
    assert app.conf.beat_schedule == schedule


def test_the_default_intervals_are_the_documented_ones():
    assert (settings.SYNC_ONLINE_SECONDS, settings.SYNC_QUEUE_SECONDS) == (15, 15)
    assert (settings.SYNC_SESSIONS_SECONDS, settings.SYNC_AGENTS_SECONDS, settings.SYNC_HISTORY_SECONDS) == (60, 300, 300)


@pytest.mark.parametrize(
    ("task", "queue"),
    [
        ("accounts.tasks.sync_agents_task", "sync"),
        ("accounts.tasks.sync_all_online_task", "sync"),
        ("sessions_app.tasks.sync_queue_task", "sync"),
        ("sessions_app.tasks.sync_all_sessions_task", "sync"),
        ("messaging.tasks.sync_history_task", "sync"),
        ("messaging.tasks.send_message_task", "send"),
        ("messaging.tasks.send_outbox_sweep_task", "send"),
    ],
)
def test_sync_work_and_sends_go_to_their_own_queues(task, queue):
    route = app.amqp.router.route({}, task, args=(1,), kwargs={})
    assert route["queue"].name == queue


def test_every_route_matches_a_registered_task():
    app.loader.import_default_modules()
    names = [name for name in app.tasks if not name.startswith("celery.")]
    for pattern in settings.CELERY_TASK_ROUTES:
        assert any(fnmatch(name, pattern) for name in names), f"no task matches the route {pattern}"


def test_only_transient_wechat_errors_are_retried():
    from kfadmin.wechat import WeChatRetryableError
    from messaging.tasks import send_message_task

    for task in (
        sync_agents_task,
        app.tasks.get("sessions_app.tasks.sync_queue_task") or _import("sessions_app.tasks").sync_queue_task,
        send_message_task,
    ):
        assert task.autoretry_for == (WeChatRetryableError,)
        assert task.retry_jitter and task.retry_backoff and task.max_retries


def test_only_the_claimed_per_account_syncs_are_redelivered_when_their_worker_dies():
    app.loader.import_default_modules()
    redelivered = {
        "accounts.tasks.sync_agents_task",
        "accounts.tasks.sync_online_task",
        "sessions_app.tasks.sync_queue_task",
        "sessions_app.tasks.sync_sessions_task",
        "messaging.tasks.sync_history_task",
    }
    for name in redelivered:
        task = app.tasks[name]
        assert task.acks_late and task.reject_on_worker_lost, name
    # A fan-out run twice queues every account twice: not redelivered.
    for name in ("accounts.tasks.sync_all_agents_task", "messaging.tasks.sync_all_history_task"):
        assert not app.tasks[name].reject_on_worker_lost, name
    assert not app.conf.task_reject_on_worker_lost  # per task, never globally


def _import(name: str):
    import importlib

    return importlib.import_module(name)


# --------------------------------------------------------------------------- a real worker


@dataclass
class Observed:
    """What the worker thread did, collected from Celery's signals."""

    done: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    retried: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def finished(self, name: str) -> list:
        with self.lock:
            return [(args, retval) for task, args, retval, state in self.done if task == name and state == "SUCCESS"]


@pytest.fixture
def worker(transactional_db) -> Iterator[Observed]:
    observed = Observed()

    def on_postrun(sender=None, args=None, retval=None, state=None, **kwargs):
        with observed.lock:
            observed.done.append((sender.name, tuple(args or ()), retval, state))
        # Worker threads must not keep connections: the test database is dropped at the end.
        connection.close()

    def on_failure(sender=None, exception=None, **kwargs):
        with observed.lock:
            observed.failed.append((sender.name, exception))

    def on_retry(sender=None, reason=None, **kwargs):
        with observed.lock:
            observed.retried.append((sender.name, reason))

    task_postrun.connect(on_postrun, weak=False)
    task_failure.connect(on_failure, weak=False)
    task_retry.connect(on_retry, weak=False)
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        for queue in ("celery", "sync", "send"):
            channel.queue_declare(queue=queue, durable=True, auto_delete=False)
            channel.queue_purge(queue)
    try:
        with start_worker(
            app, pool="threads", concurrency=2, perform_ping_check=False,
            queues=["celery", "sync"], loglevel="WARNING", shutdown_timeout=60,
        ):
            yield observed
    finally:
        task_postrun.disconnect(on_postrun)
        task_failure.disconnect(on_failure)
        task_retry.disconnect(on_retry)


def test_a_sync_task_sent_through_the_broker_fills_the_database(emulator, kf_account_row, worker, wait_until):
    emulator.bound_agent("alice")
    emulator.bound_agent("bob")
    sync_agents_task.delay(kf_account_row.pk)
    wait_until(lambda: worker.finished("accounts.tasks.sync_agents_task"))
    assert Agent.objects.filter(official_account=kf_account_row).count() == 2
    (_, retval), = worker.finished("accounts.tasks.sync_agents_task")
    assert retval == {"listed": 2, "created": 2, "deleted": 0, "undeleted": 0}
    assert SyncState.objects.get(official_account=kf_account_row, job="agents").running_since is None


@pytest.mark.parametrize(
    "fault",
    [{"kind": "errcode", "errcode": -1}, {"kind": "http", "status": 502}],
    ids=["system-busy", "http-502"],
)
def test_a_transient_error_is_retried_until_it_succeeds(emulator, kf_account_row, worker, wait_until, fault):
    emulator.bound_agent("alice")
    emulator.control("add_fault", next=2, path_prefix=GETKFLIST, **fault)
    sync_agents_task.delay(kf_account_row.pk)
    wait_until(lambda: worker.finished("accounts.tasks.sync_agents_task"))
    assert len(worker.retried) == 2
    assert getkflist_calls(emulator) == 3
    assert Agent.objects.filter(official_account=kf_account_row).count() == 1
    state = SyncState.objects.get(official_account=kf_account_row, job="agents")
    assert state.last_error == "" and state.running_since is None


def test_a_quota_error_is_not_retried(emulator, kf_account_row, worker, wait_until):
    emulator.bound_agent("alice")
    emulator.control("add_fault", kind="errcode", errcode=45009, next=1, path_prefix=GETKFLIST)
    sync_agents_task.delay(kf_account_row.pk)
    wait_until(lambda: worker.failed)
    (name, exception), = worker.failed
    assert name == "accounts.tasks.sync_agents_task"
    assert isinstance(exception, WeChatRateLimited)
    assert worker.retried == []
    assert getkflist_calls(emulator) == 1
    assert not Agent.objects.exists()
    state = SyncState.objects.get(official_account=kf_account_row, job="agents")
    assert state.last_error.startswith("The daily call quota for this WeChat API is used up.")
    assert state.running_since is None


def test_a_held_claim_makes_the_task_skip(emulator, kf_account_row, worker, wait_until):
    emulator.bound_agent("alice")
    assert sync_state_claim(account_id=kf_account_row.pk, job="agents")
    sync_agents_task.delay(kf_account_row.pk)
    (_, retval), = wait_until(lambda: worker.finished("accounts.tasks.sync_agents_task"))
    assert retval is None
    assert getkflist_calls(emulator) == 0
    assert not Agent.objects.exists()


def test_two_deliveries_at_once_sync_only_once(emulator, kf_account_row, worker, wait_until):
    emulator.bound_agent("alice")
    # Slow enough that the second delivery starts while the first is still running.
    emulator.control("add_fault", kind="slow", delay=1.5, next=1, path_prefix=GETKFLIST)
    sync_agents_task.delay(kf_account_row.pk)
    sync_agents_task.delay(kf_account_row.pk)
    finished = wait_until(lambda: len(worker.finished("accounts.tasks.sync_agents_task")) == 2 and worker.finished("accounts.tasks.sync_agents_task"))
    assert sorted(retval is None for _, retval in finished) == [False, True]
    assert getkflist_calls(emulator) == 1


def test_the_fan_out_queues_one_task_per_active_account(emulator, kf_account_row, worker, wait_until):
    emulator.bound_agent("alice")
    idle = OfficialAccountFactory(is_active=False)
    sync_all_agents_task.delay()
    (_, count), = wait_until(lambda: worker.finished("accounts.tasks.sync_all_agents_task"))
    assert count == 1
    (args, _), = wait_until(lambda: worker.finished("accounts.tasks.sync_agents_task"))
    assert args == (kf_account_row.pk,)
    assert Agent.objects.filter(official_account=kf_account_row).exists()
    assert not SyncState.objects.filter(official_account=idle).exists()


def test_an_accepted_invitation_shows_at_the_online_lists_pace(emulator, kf_account_row, worker, wait_until):
    from accounts.clients import wechat_client_for
    from accounts.sync import agents_sync

    emulator.state.add_agent(appid=emulator.appid, prefix="olga", bound=False, online=False)
    olga = emulator.kf_account("olga")
    wechat_client_for(kf_account_row).invite_worker(olga, "olga_wx01")
    agents_sync(account_id=kf_account_row.pk)
    assert Agent.objects.get(kf_account=olga).invite_status == "waiting"
    emulator.state.invite_respond(appid=emulator.appid, kf_account=olga, action="accept")

    sync_all_online_task.delay()  # what beat runs every 15 s; the agents' own run is 5 min away

    wait_until(lambda: worker.finished("accounts.tasks.sync_agents_task"))
    agent = Agent.objects.get(kf_account=olga)
    assert (agent.kf_wx, agent.invite_status) == ("olga_wx01", "")


def test_the_online_fan_out_reads_agents_only_of_accounts_with_a_pending_invitation(db, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from accounts import tasks
    from tests.factories import AgentFactory

    queued: list[tuple[str, int]] = []
    for task in (tasks.sync_online_task, tasks.sync_agents_task):
        monkeypatch.setattr(task, "apply_async", lambda args, expires, name=task.name: queued.append((name, args[0])))
    soon = timezone.now() + timedelta(days=1)
    waiting = OfficialAccountFactory()
    AgentFactory(official_account=waiting, kf_wx="", invite_wx="olga_wx01", invite_status="waiting", invite_expire_time=soon)
    quiet = OfficialAccountFactory()
    AgentFactory(official_account=quiet)  # bound
    AgentFactory(official_account=quiet, kf_wx="", invite_status="waiting",
                 invite_expire_time=timezone.now() - timedelta(minutes=1))  # expired
    AgentFactory(official_account=quiet, kf_wx="", invite_status="rejected")
    AgentFactory(official_account=quiet, kf_wx="", invite_status="waiting", invite_expire_time=soon,
                 deleted_at=timezone.now())
    idle = OfficialAccountFactory(is_active=False)
    AgentFactory(official_account=idle, kf_wx="", invite_status="waiting", invite_expire_time=soon)

    assert tasks.sync_all_online_task() == 2

    assert sorted(queued) == sorted([
        ("accounts.tasks.sync_online_task", waiting.pk),
        ("accounts.tasks.sync_online_task", quiet.pk),
        ("accounts.tasks.sync_agents_task", waiting.pk),
    ])


def test_starting_beat_runs_every_sync_once_right_away(emulator, kf_account_row, worker, wait_until, tmp_path):
    alice = emulator.bound_agent("alice")
    served = emulator.customer()
    emulator.control("agent_accept", kf_account=alice, openid=served)
    waiting = emulator.customer()
    beat = Service(app, schedule_filename=str(tmp_path / "celerybeat-schedule"))
    thread = threading.Thread(target=beat.start, daemon=True)
    thread.start()
    try:
        # The agents interval is 5 minutes: only the start-up run can fill these now.
        wait_until(
            lambda: SyncState.objects.filter(
                official_account=kf_account_row, job__in=["agents", "online", "queue", "sessions"],
                last_success_at__isnull=False,
            ).count() == 4,
            timeout=60,
        )
    finally:
        beat.stop(wait=True)
        thread.join(10)
    assert Agent.objects.get(kf_account=alice).online_status == 1
    assert KfSession.objects.get(customer__openid=served).state == "open"
    assert KfSession.objects.get(customer__openid=waiting).state == "waiting"
    assert OfficialAccount.objects.get(pk=kf_account_row.pk).waiting_count == 1
