"""Celery tasks of the messaging app.

Thin: ids in, one claimed service call, retries only for the WeChat client's
transient errors (see accounts.tasks for the shared conventions).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from accounts.models import OfficialAccount, SyncState
from accounts.sync import (
    SyncLeaseLost,
    sync_claimed_run,
    sync_state_claim,
    sync_state_held_until,
    sync_state_release,
)
from accounts.tasks import SYNC_RETRY, enqueue_for_active_accounts
from kfadmin.wechat import WeChatRetryableError

# send_message_task lives with the delivery it runs (messaging.delivery), which the
# services that enqueue it import; it is imported here so the worker registers it
# with the app's other tasks.
from messaging.delivery import send_message_task as send_message_task
from messaging.media import (
    library_sync,
    media_fetch_give_up,
    media_fetch_overdue,
    media_inbound_fetch,
)
from messaging.selectors import tail_accounts_due
from messaging.services import export_job_run, export_jobs_clean, outbound_sweep
from messaging.sync import history_sync, live_tail

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------- history sync

# A retried run resumes from the cursor, which only moves after a complete window,
# so retrying loses nothing; the backoff gives a busy WeChat (errcode -1, 5xx,
# timeouts) time to recover.
HISTORY_RETRY: dict[str, Any] = {
    "autoretry_for": (WeChatRetryableError,),
    "retry_backoff": 5,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": 6,
}


@shared_task(bind=True, queue="sync", acks_late=True, reject_on_worker_lost=True, **HISTORY_RETRY)
def sync_history_task(self, account_id: int, after_lost_worker: bool = False) -> dict | None:
    """Bring one account's archive up to now. Never overlaps another history run of
    the same account: it claims the account's history SyncState row (a conditional
    UPDATE with a short lease the sync renews after every page) and skips if it is
    taken.

    Safe to redeliver (acks_late, reject_on_worker_lost): the claim and the cursor
    make a second run resume or do nothing. A delivery that comes back because the
    worker running it died finds that run's claim still held until its lease runs
    out; it comes back once then (`after_lost_worker`) and takes over, instead of
    leaving the account to the next beat tick."""
    if not OfficialAccount.objects.filter(pk=account_id, is_active=True).exists():
        logger.info("Skipping history sync of account %s: it is gone or inactive.", account_id)
        return None
    job = SyncState.Job.HISTORY
    token = sync_state_claim(account_id=account_id, job=job)
    if token is None:
        held_until = sync_state_held_until(account_id=account_id, job=job)
        redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
        if redelivered and not after_lost_worker and held_until is not None:
            wait = max(0.0, (held_until - timezone.now()).total_seconds()) + 1
            logger.info(
                "History sync of account %s was redelivered; the claim it finds runs out in %.0f s, "
                "retrying then.", account_id, wait,
            )
            raise self.retry(
                countdown=wait, kwargs={"after_lost_worker": True}, max_retries=self.request.retries + 1
            )
        logger.info("Skipping history sync of account %s: another run holds it.", account_id)
        return None
    try:
        return history_sync(account_id=account_id, lease_token=token).as_json()
    except SyncLeaseLost:
        logger.warning("History sync of account %s stopped: its claim was taken over.", account_id)
        return None
    finally:
        sync_state_release(account_id=account_id, job=job, token=token)


@shared_task(queue="sync")
def sync_all_history_task() -> int:
    """Beat entry: one history sync per active official account."""
    return enqueue_for_active_accounts(sync_history_task, expires=settings.SYNC_HISTORY_SECONDS)


# ------------------------------------------------------------------------ live tail
# Every few seconds, so each piece is cheap and nothing piles up: the fan-out reads
# the accounts due in one query; each task and fan-out `expires` after one interval
# (a queue that fell behind drops stale runs instead of running them all); a run
# claims the account's tail row for a short lease, so a slow run is skipped by the
# next, never doubled. No retries: the next run is the retry. Not acks_late: a run
# lost with its worker is repeated by the next tick anyway.


@shared_task(queue="sync")
def sync_tail_task(account_id: int) -> dict | None:
    """Store one account's newest chat records (messaging.sync.live_tail)."""
    result = sync_claimed_run(
        account_id=account_id,
        job=SyncState.Job.TAIL,
        run=lambda heartbeat: live_tail(account_id=account_id, heartbeat=heartbeat),
    )
    return result.as_json() if result is not None else None


@shared_task(queue="sync")
def sync_all_tail_task() -> int:
    """Beat entry: one tail run per account with open sessions or a watched
    conversation, unless WeChat paused it (45009/45011)."""
    account_ids = tail_accounts_due()
    for account_id in account_ids:
        sync_tail_task.apply_async(args=[account_id], expires=settings.SYNC_TAIL_SECONDS)
    return len(account_ids)


# Routed to the "send" queue with the sends it rescues.
@shared_task(bind=True, ignore_result=True)
def send_outbox_sweep_task(self) -> dict:
    """Beat entry: enqueue again the queued messages no worker took (the broker was
    down when they were queued), and mark "unknown" the ones a worker died sending.
    Safe to run twice at once: each message is claimed with a conditional update.
    A full batch queues the next one at once."""
    result = outbound_sweep()
    if result.lost or result.requeued:
        logger.info("Outbox sweep: %s enqueued again, %s lost in flight.", len(result.requeued), len(result.lost))
    if result.more:
        self.apply_async(countdown=1)
    return result.as_json()


# ------------------------------------------------------------------ history exports
# On the default "celery" queue: an export of millions of rows takes minutes and must
# delay neither a sync nor a send. Not acks_late: a redelivered job finds its row
# claimed and does nothing; a job whose worker died is failed by the cleanup, and the
# person exports again (the page says so).


@shared_task(ignore_result=True)
def export_history_task(job_id: int) -> dict | None:
    """Write one export job's file (see export_job_run)."""
    job = export_job_run(job_id=job_id)
    if job is None:
        return None
    return {"status": job.status, "rows": job.rows_written}


@shared_task(ignore_result=True)
def export_cleanup_task() -> dict:
    """Beat entry: remove the files of exports past EXPORT_KEEP_HOURS, fail jobs whose
    worker died or that no worker took."""
    result = export_jobs_clean()
    if result.expired or result.stale or result.unclaimed:
        logger.info("Export cleanup: %s removed, %s stopped, %s never taken.",
                    result.expired, result.stale, result.unclaimed)
    return result.as_json()

# ------------------------------------------------------------------ media and library

# A customer's media is fetched as soon as its callback is stored; WeChat keeps it 3
# days, so transient failures are retried patiently (up to about an hour), and the
# sweep below enqueues again what a lost task left waiting.
FETCH_RETRY: dict[str, Any] = {
    "autoretry_for": (WeChatRetryableError,),
    "retry_backoff": 5,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 8,
}


# Fetching is idempotent (the row is claimed by a conditional update), so acks_late is safe.
@shared_task(bind=True, queue="sync", acks_late=True, ignore_result=True, **FETCH_RETRY)
def fetch_media_task(self, media_file_id: int) -> str | None:
    """Download one customer media from WeChat and keep it; once the retries are used
    up, mark it failed with the reason (as a send is given up)."""
    try:
        media = media_inbound_fetch(media_file_id=media_file_id)
    except WeChatRetryableError as error:
        if self.request.retries >= self.max_retries:
            media = media_fetch_give_up(media_file_id=media_file_id, error=error)
            return media.state if media is not None else None
        raise
    return media.state if media is not None else None


@shared_task(queue="sync", ignore_result=True)
def fetch_media_sweep_task() -> int:
    """Beat entry: enqueue again the customer media still waiting to be fetched."""
    waiting = media_fetch_overdue()
    for media_file_id in waiting:
        fetch_media_task.delay(media_file_id)
    return len(waiting)


@shared_task(**SYNC_RETRY)
def sync_library_task(account_id: int) -> dict | None:
    """Copy one account's permanent materials and published articles (the library)."""
    result = sync_claimed_run(
        account_id=account_id, job=SyncState.Job.LIBRARY, run=lambda heartbeat: library_sync(account_id=account_id)
    )
    return result.as_json() if result else None


@shared_task(queue="sync")
def sync_all_library_task() -> int:
    """Beat entry: one library sync per active official account."""
    return enqueue_for_active_accounts(sync_library_task, expires=settings.SYNC_LIBRARY_SECONDS)
