"""Sending kf messages from kfadmin, the typing indicator, and audited exports.

A send is two steps. `outbound_queue` (in the request) refuses what WeChat would
reject for the reply window or budget, stores an `OutboundMessage(status=queued)` and
enqueues `send_message_task` once the transaction commits. The worker's side,
`messaging.delivery.outbound_deliver`, claims the row with a conditional update
queued → sending, so two deliveries of the same id send once, checks the window again
(other sends may have used it up meanwhile), calls WeChat and records the outcome.

WeChat's send is not idempotent, so a failed call is sent again only when the failure
proves WeChat never took it (the connection was never established, errcode -1).
Any other doubt (a read timeout, a dropped connection, a 5xx, a worker that died
mid-call) makes the message "unknown": not sent again, its budget counted as used,
and settled by the history sync (`messaging.delivery.outbound_unknown_settle`):
WeChat's copy of it in the records means sent, no copy in a fully stored stretch of
history means failed ("not delivered"), which the person may send again
(`outbound_resend`).

If the broker is down when a message is queued, it stays queued and the outbox sweep
(`outbound_sweep`, periodic) enqueues it once the workers are back.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop as _noop
from kombu.exceptions import OperationalError as KombuOperationalError

from accounts.audit import audit_event_record
from accounts.clients import wechat_client_for
from accounts.live import live_bump, seen_domain
from accounts.models import Agent, OfficialAccount, SyncState
from kfadmin.celery import app as celery_app
from kfadmin.wechat import WeChatError, explain
from messaging.delivery import (
    ERRCODE_BUDGET_USED,
    ERRCODE_WINDOW_CLOSED,
    outbound_lost_mark,
    send_message_task,
)
from messaging.exports import ExportRow, export_lines
from messaging.media import (
    QUICK_REPLY_LIBRARY_KINDS,
    MediaUpload,
    library_item_get,
    media_file_store,
)
from messaging.models import (
    SEND_STALE_AFTER,
    ConversationSeen,
    ExportJob,
    MediaFile,
    OutboundMessage,
    QuickReply,
    QuickReplyUse,
)
from messaging.selectors import (
    RecordFilter,
    customer_window,
    records_export_total,
    records_iter_export_rows,
)
from sessions_app.models import Customer
from sessions_app.selectors import customer_remark_names

logger = logging.getLogger(__name__)

# A queued message this long past its due time was never handed to a worker (the
# broker was down, or lost it): the outbox sweep enqueues it again.
OUTBOX_SWEEP_AFTER = timedelta(minutes=1)
OUTBOX_SWEEP_BATCH = 200

ERRCODE_NO_INTERACTION = 45080

# What a message's `error` says, stored in English and translated for each viewer.
ENQUEUE_FAILED = _noop(
    "The task queue cannot be reached right now. The message is saved and will be sent "
    "when the worker is back."
)

# What a failed publish to the broker raises (kombu wraps the transport's errors).
BROKER_ERRORS: tuple[type[BaseException], ...] = (KombuOperationalError, ConnectionError, OSError)


class SendRefused(Exception):
    """kfadmin will not ask WeChat: it would refuse for the window, budget or the
    typing rule. `errcode` is the code WeChat would have answered."""

    def __init__(self, errcode: int, explanation: str):
        self.errcode = errcode
        self.explanation = explanation
        super().__init__(explanation)


class SendAgainRefused(Exception):
    """The message cannot be sent again: it did not fail, or it was sent again already."""

    def __init__(self, explanation: str):
        self.explanation = explanation
        super().__init__(explanation)


def send_refusal(*, customer: Customer, now: datetime | None = None) -> SendRefused | None:
    """Why WeChat would refuse one more message to `customer` now, or None."""
    state = customer_window(customer=customer, now=now)
    # No grant running: WeChat answers 45015; grants running with no sends left: 45047.
    if state.seconds_left <= 0:
        return SendRefused(ERRCODE_WINDOW_CLOSED, _(explain(ERRCODE_WINDOW_CLOSED)))
    if state.remaining <= 0:
        if state.pending:
            return SendRefused(
                ERRCODE_BUDGET_USED,
                _("The messages already waiting to be sent use up the rest of this customer's budget. ")
                + _(explain(ERRCODE_BUDGET_USED)),
            )
        return SendRefused(ERRCODE_BUDGET_USED, _(explain(ERRCODE_BUDGET_USED)))
    return None


def outbound_queue(
    *,
    account: OfficialAccount,
    customer: Customer,
    agent: Agent | None,
    msgtype: str,
    payload: dict[str, Any],
    actor,
    resend_of: OutboundMessage | None = None,
    media: MediaUpload | MediaFile | None = None,
    thumb: MediaUpload | MediaFile | None = None,
) -> OutboundMessage:
    """Queue one message for sending; raises SendRefused when WeChat would refuse it.

    `media` and `thumb` are files to send as the payload's `media_id` and
    `thumb_media_id`: a new file (kept here, checked against WeChat's limits, raises
    MediaRefused) or one kept before. They are uploaded to WeChat by the worker.

    The task is enqueued once the transaction commits. If the broker cannot be reached
    then, the message stays queued with ENQUEUE_FAILED as its note (`awaits_worker`)
    and the outbox sweep enqueues it later; the caller is not failed for it."""
    refusal = send_refusal(customer=customer)
    params: dict[str, Any] = {"openid": customer.openid, "msgtype": msgtype, "kf_account": agent.kf_account if agent else ""}
    if resend_of is not None:
        params["resend_of"] = resend_of.pk
    if refusal is not None:
        audit_event_record(
            actor=actor, action="message_send", official_account=account, target=customer.openid,
            params=params, ok=False, errcode=refusal.errcode, message=refusal.explanation,
        )
        raise refusal
    with transaction.atomic():
        files = {
            key: media_file_store(
                account=account, kind=given.kind, content=given.content, name=given.name, actor=actor, customer=customer
            ) if isinstance(given, MediaUpload) else given
            for key, given in (("media", media), ("thumb", thumb))
        }
        outbound = OutboundMessage.objects.create(
            official_account=account,
            customer=customer,
            agent=agent,
            msgtype=msgtype,
            payload=payload,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
            resend_of=resend_of,
            media=files["media"],
            thumb=files["thumb"],
        )
        audit_event_record(
            actor=actor, action="message_queue", official_account=account, target=customer.openid,
            params={**params, "outbound_id": outbound.pk,
                    **{f"{key}_file": f.pk for key, f in files.items() if f is not None}},
        )
        transaction.on_commit(partial(outbound_enqueue, outbound_id=outbound.pk))
    return outbound


def outbound_enqueue(*, outbound_id: int) -> bool:
    """Hand a queued message to the workers; False when the broker cannot be reached.

    Then the message stays queued and says it will be sent when the worker is back;
    the outbox sweep enqueues it again. Sending a duplicate task is harmless (the
    delivery claims the row), so this may be called again at any time."""
    try:
        send_message_task.delay(outbound_id)
    except BROKER_ERRORS as exc:
        logger.warning("Could not enqueue outbound message %s (%s: %s); the outbox sweep will.",
                       outbound_id, type(exc).__name__, exc)
        OutboundMessage.objects.filter(
            pk=outbound_id, status=OutboundMessage.Status.QUEUED, attempts=0
        ).update(error=ENQUEUE_FAILED)
        return False
    return True


@dataclass(frozen=True)
class SweepResult:
    requeued: list[int]  # queued messages handed to the workers again
    lost: list[int]  # "sending" messages whose worker died: now unknown
    more: bool  # a full batch: more may be waiting

    def as_json(self) -> dict:
        return {"requeued": self.requeued, "lost": self.lost, "more": self.more}


@translation.override("en")
def outbound_sweep(*, now: datetime | None = None, batch: int = OUTBOX_SWEEP_BATCH) -> SweepResult:
    """The outbox sweep: enqueue again the queued messages no worker took (the broker
    was down when they were queued, or lost them), and settle as unknown the ones a
    worker died sending.

    Each queued message is claimed by moving its due time with a conditional update,
    so sweeps running side by side enqueue it once; a duplicate task would still
    send nothing twice (the delivery's own claim)."""
    now = now or timezone.now()
    overdue = list(
        OutboundMessage.objects.filter(status=OutboundMessage.Status.QUEUED, due_at__lt=now - OUTBOX_SWEEP_AFTER)
        .order_by("due_at", "id")
        .values_list("pk", "due_at")[:batch]
    )
    requeued = [
        pk
        for pk, due_at in overdue
        if OutboundMessage.objects.filter(pk=pk, status=OutboundMessage.Status.QUEUED, due_at=due_at).update(
            due_at=now
        )
    ]
    for pk in requeued:
        outbound_enqueue(outbound_id=pk)
    cut = now - SEND_STALE_AFTER
    stuck = list(
        OutboundMessage.objects.filter(status=OutboundMessage.Status.SENDING)
        .filter(Q(attempted_at__lt=cut) | Q(attempted_at__isnull=True, created_at__lt=cut))
        .order_by("id")
        .values_list("pk", flat=True)[:batch]
    )
    lost = [pk for pk in stuck if outbound_lost_mark(outbound_id=pk, now=now)]
    return SweepResult(requeued=requeued, lost=lost, more=len(overdue) >= batch or len(stuck) >= batch)


def outbound_resend(*, outbound: OutboundMessage, actor) -> OutboundMessage:
    """"Send again": a new message with the same content, through the normal queue
    (window and budget checks, audit). Only a failed message, and only once.

    Raises SendAgainRefused, or SendRefused when WeChat would refuse it now."""
    with transaction.atomic():
        original = (
            OutboundMessage.objects.select_for_update(of=("self",))
            .select_related("official_account", "customer", "agent")
            .get(pk=outbound.pk)
        )
        if not original.can_send_again:
            raise SendAgainRefused(_("Only a message that failed can be sent again."))
        if original.resends.exists():
            raise SendAgainRefused(_("This message has already been sent again."))
        refusal: SendRefused | None
        try:
            again = outbound_queue(
                account=original.official_account, customer=original.customer, agent=original.agent,
                msgtype=original.msgtype, payload=original.payload, actor=actor, resend_of=original,
                media=original.media, thumb=original.thumb,
            )
        except SendRefused as refused:
            refusal = refused  # raised once the block commits, so its audit row stays
        else:
            refusal = None
            audit_event_record(
                actor=actor, action="message_resend", official_account=original.official_account,
                target=original.customer.openid,
                params={"outbound_id": again.pk, "resend_of": original.pk, "msgtype": original.msgtype},
            )
    if refusal is not None:
        raise refusal
    return again


def typing_refusal(*, customer: Customer, now: datetime | None = None) -> SendRefused | None:
    """Typing needs an open window and a customer interaction in the last 30 seconds."""
    state = customer_window(customer=customer, now=now)
    if state.seconds_left <= 0 or customer.sends_left(now) <= 0:
        return SendRefused(ERRCODE_WINDOW_CLOSED, _(explain(ERRCODE_WINDOW_CLOSED)))
    if not state.typing_allowed:
        return SendRefused(ERRCODE_NO_INTERACTION, explain(ERRCODE_NO_INTERACTION))
    return None


def typing_send(*, account: OfficialAccount, customer: Customer, command: str, actor) -> None:
    """Show ("Typing") or hide ("CancelTyping") the typing indicator to the customer.

    Raises SendRefused before calling WeChat when it would refuse, WeChatError when
    WeChat refuses anyway."""
    params = {"openid": customer.openid, "command": command}
    if command == "Typing":
        refusal = typing_refusal(customer=customer)
        if refusal is not None:
            audit_event_record(
                actor=actor, action="typing_send", official_account=account, target=customer.openid,
                params=params, ok=False, errcode=refusal.errcode, message=refusal.explanation,
            )
            raise refusal
    try:
        wechat_client_for(account).send_typing(customer.openid, command)
    except WeChatError as error:
        audit_event_record(
            actor=actor, action="typing_send", official_account=account, target=customer.openid,
            params=params, ok=False, errcode=error.errcode, message=error.explanation,
        )
        raise
    audit_event_record(actor=actor, action="typing_send", official_account=account, target=customer.openid, params=params)


def history_export_record(
    *, account: OfficialAccount, actor: Any, export_format: str, filters: RecordFilter, job: ExportJob | None = None
) -> None:
    """Audit an export of the archive (who took which records out, and how): the
    filters that were set, and the background job when there is one."""
    params = filters.as_json()
    if job is not None:
        params["job"] = job.pk
    audit_event_record(
        actor=actor, action="history_export", official_account=account, target=export_format, params=params,
    )


# ------------------------------------------------------------------ export jobs

# Sentences an export job fails with (stored in English, translated when shown).
EXPORT_NOT_QUEUED = _noop(
    "The task queue could not be reached, so the export was not started. Try again in a minute."
)
EXPORT_NO_WORKER = _noop(
    "No worker took the export within an hour. Check that a Celery worker runs, then export again."
)
EXPORT_WORKER_LOST = _noop("The worker preparing the export stopped before it finished. Export again.")
EXPORT_WRITE_FAILED = _noop(
    "The export file could not be written (the disk is full or not writable). Tell your operator, then export again."
)
EXPORT_READ_FAILED = _noop("The archive could not be read to the end. Export again in a minute.")
EXPORT_UNEXPECTED = _noop("The export failed unexpectedly; the worker log says why. Export again.")
EXPORT_FILE_MISSING = _noop(
    "The export file is not on this server: the web servers and the workers must share EXPORT_ROOT."
)
# A running job writes its progress this often; one silent for EXPORT_STALE_AFTER lost its worker.
EXPORT_PROGRESS_ROWS = 20_000
EXPORT_PROGRESS_SECONDS = 2.0
EXPORT_STALE_AFTER = timedelta(minutes=10)
EXPORT_QUEUED_FOR_AT_MOST = timedelta(hours=1)


class ExportJobStopped(Exception):
    """The job's row is no longer running (the cleanup failed it): stop writing."""


def export_job_path(job: ExportJob) -> Path:
    return Path(settings.EXPORT_ROOT) / job.file_name


def _remove(path: Path) -> None:
    """Delete a file if it is there; a folder that cannot be read has nothing to delete."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        logger.warning("Could not remove %s: %s", path, exc)


def export_job_create(
    *, account: OfficialAccount, actor: Any, export_format: str, filters: RecordFilter
) -> ExportJob:
    """Queue a background export of `filters` (audited as the export request); the
    worker starts once this transaction commits."""
    with transaction.atomic():
        job = ExportJob.objects.create(
            official_account=account, requested_by=actor, export_format=export_format, filters=filters.as_json(),
        )
        history_export_record(account=account, actor=actor, export_format=export_format, filters=filters, job=job)
        transaction.on_commit(partial(export_job_enqueue, job_id=job.pk))
    return job


def export_job_enqueue(*, job_id: int) -> bool:
    """Hand the job to the workers; when the broker cannot be reached the job fails at
    once with a sentence saying so, rather than waiting for nobody."""
    try:
        celery_app.send_task("messaging.tasks.export_history_task", args=(job_id,))
    except BROKER_ERRORS as exc:
        logger.warning("Could not enqueue export job %s (%s: %s).", job_id, type(exc).__name__, exc)
        ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.QUEUED).update(
            status=ExportJob.Status.FAILED, error=EXPORT_NOT_QUEUED, finished_at=timezone.now()
        )
        return False
    return True


def export_job_run(*, job_id: int) -> ExportJob | None:
    """Write the job's file: claim it (queued → running, so a second delivery does
    nothing), count the matches for the progress, write every row to a temporary
    name with progress every few seconds, then rename it into place and mark the job
    done until EXPORT_KEEP_HOURS from now. Any failure marks it failed with a
    sentence and removes the partial file: a cut file is never offered."""
    now = timezone.now()
    file_name = ""
    job = ExportJob.objects.filter(pk=job_id).select_related("official_account").first()
    if job is None:
        return None
    file_name = f"{job.official_account_id}/{secrets.token_urlsafe(18)}.{job.export_format}"
    claimed = ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.QUEUED).update(
        status=ExportJob.Status.RUNNING, started_at=now, heartbeat_at=now, file_name=file_name
    )
    if not claimed:
        return None
    job.refresh_from_db()
    final = export_job_path(job)
    partial_path = final.with_name(final.name + ".part")
    try:
        written, size = _export_job_write(job, partial_path)
        os.replace(partial_path, final)
    except ExportJobStopped:
        _remove(partial_path)
        logger.warning("Export job %s stopped: it was no longer running.", job_id)
        return None
    except BaseException as exc:
        _remove(partial_path)
        if isinstance(exc, OSError):
            error = EXPORT_WRITE_FAILED
        elif isinstance(exc, DatabaseError):
            error = EXPORT_READ_FAILED
        else:
            error = EXPORT_UNEXPECTED
        logger.exception("Export job %s failed.", job_id)
        ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.RUNNING).update(
            status=ExportJob.Status.FAILED, error=error, finished_at=timezone.now()
        )
        if not isinstance(exc, Exception):
            raise  # a worker shutting down (SystemExit, KeyboardInterrupt)
        return ExportJob.objects.get(pk=job_id)
    finished = timezone.now()
    done = ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.RUNNING).update(
        status=ExportJob.Status.DONE, rows_written=written, size_bytes=size, finished_at=finished,
        heartbeat_at=finished, expires_at=finished + timedelta(hours=settings.EXPORT_KEEP_HOURS),
    )
    if not done:  # failed as stale at the last moment: its file is not offered
        _remove(final)
        return None
    return ExportJob.objects.get(pk=job_id)


def _export_job_write(job: ExportJob, path: Path) -> tuple[int, int]:
    """Rows written and bytes, into `path`."""
    account = job.official_account
    asked = RecordFilter.from_json(job.filters)
    total = records_export_total(account=account, filters=asked)
    ExportJob.objects.filter(pk=job.pk).update(rows_total=total)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    reported = time.monotonic()
    rows = records_iter_export_rows(account=account, filters=asked)

    def counted() -> Iterator[ExportRow]:
        nonlocal written, reported
        for row in rows:
            yield row
            written += 1
            # The clock is read every 1,000 rows only: it costs more than a row.
            if written % 1000 == 0 and (
                written % EXPORT_PROGRESS_ROWS == 0 or time.monotonic() - reported >= EXPORT_PROGRESS_SECONDS
            ):
                _export_job_progress(job.pk, written)
                reported = time.monotonic()

    # Every remark name of the account at once: one read, however long the export.
    remarks = customer_remark_names(account=account)
    with open(path, "w", encoding="utf-8", newline="") as out:
        for line in export_lines(job.export_format, counted(), account.zone, remarks):
            out.write(line)
        out.flush()
        os.fsync(out.fileno())
        size = out.tell()
    return written, size


def _export_job_progress(job_id: int, written: int) -> None:
    updated = ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.RUNNING).update(
        rows_written=written, heartbeat_at=timezone.now()
    )
    if not updated:
        raise ExportJobStopped


def export_job_download_record(*, job: ExportJob, actor: Any) -> None:
    """Audit a download of a prepared export (who, which job, how many records)."""
    audit_event_record(
        actor=actor, action="history_export_download", official_account=job.official_account,
        target=job.export_format, params={"job": job.pk, "rows": job.rows_written, "requested_by": (
            job.requested_by.get_username() if job.requested_by else None)},
    )


@dataclass(frozen=True)
class ExportCleanup:
    expired: int
    stale: int
    unclaimed: int

    def as_json(self) -> dict[str, int]:
        return {"expired": self.expired, "stale": self.stale, "unclaimed": self.unclaimed}


def export_jobs_clean(*, now: datetime | None = None) -> ExportCleanup:
    """The periodic cleanup: delete the files of exports past their keeping time
    (the row stays, as "removed"), fail running jobs whose worker went silent and
    queued jobs no worker took, removing what they left behind."""
    now = now or timezone.now()
    expired = 0
    for job in ExportJob.objects.filter(status=ExportJob.Status.DONE, expires_at__lte=now):
        _remove(export_job_path(job))
        expired += ExportJob.objects.filter(pk=job.pk, status=ExportJob.Status.DONE).update(
            status=ExportJob.Status.EXPIRED
        )
    stale = 0
    for job in ExportJob.objects.filter(status=ExportJob.Status.RUNNING, heartbeat_at__lt=now - EXPORT_STALE_AFTER):
        if ExportJob.objects.filter(pk=job.pk, status=ExportJob.Status.RUNNING, heartbeat_at=job.heartbeat_at).update(
            status=ExportJob.Status.FAILED, error=EXPORT_WORKER_LOST, finished_at=now
        ):
            stale += 1
            path = export_job_path(job)
            _remove(path.with_name(path.name + ".part"))
    unclaimed = ExportJob.objects.filter(
        status=ExportJob.Status.QUEUED, created_at__lt=now - EXPORT_QUEUED_FOR_AT_MOST
    ).update(status=ExportJob.Status.FAILED, error=EXPORT_NO_WORKER, finished_at=now)
    return ExportCleanup(expired=expired, stale=stale, unclaimed=unclaimed)


# ------------------------------------------------------------------ quick replies
# Shared replies (owner None) are managed by the account's supervisors, personal ones
# by their owner; the views check who may (messaging.views_quick_replies). Every
# change is audited.


def _reply_audit(reply: QuickReply, *, action: str, actor) -> None:
    audit_event_record(
        actor=actor, action=action, official_account=reply.official_account, target=reply.title,
        params={"reply": reply.pk, "shared": reply.is_shared, "msgtype": reply.msgtype},
    )


def _reply_message(*, account: OfficialAccount, msgtype: str, text: str, library_ident: str) -> tuple[str, dict]:
    """(msgtype, payload) of a reply: text, or a library item of this account that
    still exists (a form checks first and says so; this refuses whatever gets past)."""
    if msgtype == OutboundMessage.MsgType.TEXT:
        return msgtype, {"content": text}
    kind = QUICK_REPLY_LIBRARY_KINDS.get(msgtype)
    if kind is None:
        raise ValueError(f"A quick reply cannot be a {msgtype} message.")
    if library_item_get(account_id=account.pk, kinds=(kind,), ident=library_ident) is None:
        raise ValueError("The library item is not in this account's library.")
    key = "article_id" if msgtype == OutboundMessage.MsgType.MPNEWSARTICLE else "media_id"
    return msgtype, {key: library_ident}


@transaction.atomic
def quick_reply_create(
    *, account: OfficialAccount, owner, title: str, text: str = "", msgtype: str = OutboundMessage.MsgType.TEXT,
    library_ident: str = "", actor,
) -> QuickReply:
    """A reply, shared by the account when `owner` is None, else `owner`'s own: text,
    or (`msgtype` image, voice, video, mpnewsarticle) the library item `library_ident`."""
    msgtype, payload = _reply_message(account=account, msgtype=msgtype, text=text, library_ident=library_ident)
    reply = QuickReply.objects.create(
        official_account=account, owner=owner, title=title, msgtype=msgtype, payload=payload, created_by=actor,
    )
    _reply_audit(reply, action="quick_reply_create", actor=actor)
    return reply


@transaction.atomic
def quick_reply_update(
    *, reply: QuickReply, title: str, text: str = "", msgtype: str = OutboundMessage.MsgType.TEXT,
    library_ident: str = "", actor,
) -> QuickReply:
    reply.msgtype, reply.payload = _reply_message(
        account=reply.official_account, msgtype=msgtype, text=text, library_ident=library_ident
    )
    reply.title, reply.updated_at = title, timezone.now()
    reply.save(update_fields=["title", "msgtype", "payload", "updated_at"])
    _reply_audit(reply, action="quick_reply_update", actor=actor)
    return reply


@transaction.atomic
def quick_reply_delete(*, reply: QuickReply, actor) -> None:
    _reply_audit(reply, action="quick_reply_delete", actor=actor)
    reply.delete()


def quick_reply_use(*, reply: QuickReply, user) -> int:
    """Count one pick of `reply` by `user` (the picker lists their common ones first);
    returns their count. Not audited: it is bookkeeping, and what the person then
    sends is audited as the send."""
    use, created = QuickReplyUse.objects.get_or_create(reply=reply, user=user, defaults={"count": 1})
    if not created:
        QuickReplyUse.objects.filter(pk=use.pk).update(count=F("count") + 1, last_used_at=timezone.now())
        use.refresh_from_db(fields=["count"])
    return use.count
def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Agent):
        return value.kf_account
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# --------------------------------------------------------------- watching and seen
# Neither is audited: they record that someone looked, as a login's time does, and
# change nothing WeChat or a customer sees.

# A conversation open in a browser keeps its account's live tail running this long
# after its last poll.
WATCH_FOR = timedelta(seconds=60)
# A poll answered 204 renews the watch through the cache: the database at most this often.
_WATCH_KEY = "kfadmin:watch:{account_id}"
_WATCH_CACHED_SECONDS = int(WATCH_FOR.total_seconds() // 4)


def conversation_watch_soon(*, account: OfficialAccount) -> None:
    """`conversation_watch` for a poll answered from the cache: one cache write, and
    the database only when this process may be the first to renew in a while."""
    if cache.add(_WATCH_KEY.format(account_id=account.pk), 1, timeout=_WATCH_CACHED_SECONDS):
        conversation_watch(account=account)


def conversation_watch(*, account: OfficialAccount, now: datetime | None = None) -> None:
    """Someone has a conversation of `account` open: keep the live tail reading its
    records for WATCH_FOR. Written at most twice a minute per account, whatever the
    number of viewers (a conditional UPDATE, and an INSERT only the first time)."""
    now = now or timezone.now()
    until = now + WATCH_FOR
    cache.set(_WATCH_KEY.format(account_id=account.pk), 1, timeout=_WATCH_CACHED_SECONDS)
    updated = (
        SyncState.objects.filter(official_account=account, job=SyncState.Job.TAIL)
        .filter(Q(watched_until__isnull=True) | Q(watched_until__lt=until - WATCH_FOR / 2))
        .update(watched_until=until)
    )
    if not updated and not SyncState.objects.filter(official_account=account, job=SyncState.Job.TAIL).exists():
        SyncState.objects.bulk_create(
            [SyncState(official_account=account, job=SyncState.Job.TAIL, watched_until=until)], ignore_conflicts=True
        )


def conversation_seen_mark(*, account: OfficialAccount, user, openid: str, now: datetime | None = None) -> None:
    """`user` has looked at the conversation with `openid` now: its messages so far
    are no longer unread for them."""
    live_bump(account.pk, seen_domain(user.pk))
    ConversationSeen.objects.bulk_create(
        [ConversationSeen(user=user, official_account=account, openid=openid, seen_at=now or timezone.now())],
        update_conflicts=True,
        unique_fields=["user", "official_account", "openid"],
        update_fields=["seen_at"],
    )
