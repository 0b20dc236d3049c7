"""Celery tasks of the reports: catching the rollups up with the archive.

Both run on the sync queue (CELERY_TASK_ROUTES: `*.sync_*`), next to the syncs that
make the work, never in the way of a send.
"""

from __future__ import annotations

import logging

from celery import shared_task

from reports.services import rollups_catch_up, rollups_sweep

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def sync_rollups_task(account_id: int) -> int:
    """Derive what the account's stored pages left pending (enqueued after their commit)."""
    return rollups_catch_up(account_id=account_id)


@shared_task(ignore_result=True)
def sync_rollups_sweep_task() -> dict[int, int]:
    """Beat entry: catch up every account with pending rows, for when an enqueue was lost."""
    done = rollups_sweep()
    if any(done.values()):
        logger.info("Rollups sweep derived %s customers.", sum(done.values()))
    return done
