"""Periodic syncs of the waiting queue and the open sessions (see accounts.tasks)."""

from __future__ import annotations

from dataclasses import asdict

from celery import shared_task
from django.conf import settings

from accounts.models import SyncState
from accounts.sync import sync_claimed_run
from accounts.tasks import SYNC_RETRY, enqueue_for_active_accounts
from sessions_app.sync import queue_sync, sessions_sync


@shared_task(**SYNC_RETRY)
def sync_queue_task(account_id: int) -> dict | None:
    result = sync_claimed_run(
        account_id=account_id, job=SyncState.Job.QUEUE, run=lambda heartbeat: queue_sync(account_id=account_id)
    )
    return asdict(result) if result else None


@shared_task(**SYNC_RETRY)
def sync_sessions_task(account_id: int) -> dict | None:
    result = sync_claimed_run(
        account_id=account_id,
        job=SyncState.Job.SESSIONS,
        run=lambda heartbeat: sessions_sync(account_id=account_id, heartbeat=heartbeat),
    )
    return asdict(result) if result else None


@shared_task
def sync_all_queue_task() -> int:
    return enqueue_for_active_accounts(sync_queue_task, expires=settings.SYNC_QUEUE_SECONDS)


@shared_task
def sync_all_sessions_task() -> int:
    return enqueue_for_active_accounts(sync_sessions_task, expires=settings.SYNC_SESSIONS_SECONDS)
