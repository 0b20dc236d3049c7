"""Periodic syncs of agents and the online list.

Tasks stay thin: an account id in, one claimed service call, retries only for the
WeChat client's transient errors. The fan-out tasks (`sync_all_*_task`) are what beat
runs (schedule in settings.CELERY_BEAT_SCHEDULE); each enqueues one task per active
official account.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from celery import Task, shared_task
from celery.signals import beat_init
from django.conf import settings

from accounts.clients import emulator_callback_set
from accounts.models import OfficialAccount, SyncState
from accounts.selectors import accounts_with_pending_invitations
from accounts.sync import agents_sync, online_sync, sync_claimed_run
from kfadmin.wechat import WeChatRetryableError

logger = logging.getLogger(__name__)

# Shared by every sync task: only transient failures (network, HTTP 5xx, errcode -1)
# are retried, with exponential backoff and jitter; quota, credential and argument
# errors fail at once and show on the SyncState row.
#
# The per-account sync tasks are also redelivered when the worker running them dies
# (acks_late + reject_on_worker_lost): a run claims its SyncState row, so a second
# delivery of a run that did finish is skipped or repeats an idempotent snapshot. The
# fan-out tasks and the sends are not: those are not safe to run twice.
SYNC_RETRY: dict[str, Any] = {
    "autoretry_for": (WeChatRetryableError,),
    "retry_backoff": 2,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 3,
    "acks_late": True,
    "reject_on_worker_lost": True,
}


def enqueue_for_active_accounts(task: Task, *, expires: float) -> int:
    """Queue `task(account_id)` for every active official account."""
    account_ids = list(OfficialAccount.objects.filter(is_active=True).values_list("pk", flat=True))
    for account_id in account_ids:
        task.apply_async(args=[account_id], expires=expires)
    return len(account_ids)


@shared_task(**SYNC_RETRY)
def sync_agents_task(account_id: int) -> dict | None:
    result = sync_claimed_run(
        account_id=account_id, job=SyncState.Job.AGENTS, run=lambda heartbeat: agents_sync(account_id=account_id)
    )
    return asdict(result) if result else None


@shared_task(**SYNC_RETRY)
def sync_online_task(account_id: int) -> dict | None:
    result = sync_claimed_run(
        account_id=account_id, job=SyncState.Job.ONLINE, run=lambda heartbeat: online_sync(account_id=account_id)
    )
    return asdict(result) if result else None


@shared_task
def sync_all_agents_task() -> int:
    return enqueue_for_active_accounts(sync_agents_task, expires=settings.SYNC_AGENTS_SECONDS)


@shared_task
def sync_all_online_task() -> int:
    queued = enqueue_for_active_accounts(sync_online_task, expires=settings.SYNC_ONLINE_SECONDS)
    # An accepted invitation shows only in the agent list (the bound WeChat ID), which
    # is read every few minutes; meanwhile the agent already appears online. While an
    # invitation waits, its account's agents are read at the online list's pace.
    for account_id in accounts_with_pending_invitations():
        sync_agents_task.apply_async(args=[account_id], expires=settings.SYNC_ONLINE_SECONDS)
    return queued


@shared_task(
    autoretry_for=(WeChatRetryableError,), retry_backoff=1, retry_backoff_max=5, retry_jitter=False, max_retries=60
)
def connect_emulator_callback_task(account_id: int, url: str, mode: str = "safe") -> None:
    """Demo only: point the emulator's push at kfadmin, retrying until the emulator
    (started alongside the worker by `make run`) answers."""
    account = OfficialAccount.objects.filter(pk=account_id).first()
    if account is not None:
        emulator_callback_set(account=account, url=url, mode=mode)


@beat_init.connect
def sync_everything_on_beat_start(sender: Any = None, **kwargs: Any) -> None:
    """Run every scheduled job once when beat starts.

    Interval entries first fire one full interval after beat starts (5 minutes for
    the agents), so without this a fresh install would show empty pages for minutes.
    """
    app = sender.app
    for name, entry in app.conf.beat_schedule.items():
        logger.info("Beat started: running %s once now.", name)
        app.send_task(entry["task"], **entry.get("options", {}))
