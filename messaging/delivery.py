"""A queued kf message's way to WeChat: the worker's side of a send.

`send_message_task` takes one OutboundMessage id; `outbound_deliver` claims the row
with a conditional update queued → sending, so two deliveries of the same id send
once, checks the window again (other sends may have used it up meanwhile), calls
WeChat and records the outcome. WeChat's send is not idempotent: a failure is retried
only when it proves WeChat never took the message; any other doubt makes it
"unknown", never sent again, and settled later from WeChat's history
(`outbound_unknown_settle`, run by the history sync).

The request's side (`outbound_queue`), which enqueues this task, and the outbox sweep
are `messaging.services`, which imports this module; this module imports no module
that enqueues the task, so the two never import each other.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from celery import shared_task
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop as _noop

from accounts.audit import audit_event_record
from accounts.clients import wechat_client_for
from accounts.models import OfficialAccount
from kfadmin.wechat import (
    WeChatError,
    WeChatReplyWindowClosed,
    WeChatRetryableError,
    WeChatSendBudgetExhausted,
    explain,
)
from messaging.archive import archive_changed
from messaging.media import outbound_payload_ready, outbound_uploads_stale
from messaging.models import (
    SEND_STALE_AFTER,
    MessageRecord,
    OutboundMessage,
    archive_text,
    record_digest,
)
from sessions_app.models import Customer
from sessions_app.services import (
    customer_budget_used_up,
    customer_window_close,
    customer_window_consume,
)

logger = logging.getLogger(__name__)

# The longest a retry waits (SEND_RETRY's backoff ceiling): a message put back in
# the queue is not due before that.
SEND_RETRY_DUE_AFTER = timedelta(seconds=60)
# WeChat's copy of a send of unknown outcome is looked for from a little before the
# attempt began (the clocks differ; records have whole seconds) to SETTLE_AFTER after
# it (as the reconcile of sent copies, messaging.sync.RECONCILE_WINDOW).
SETTLE_BEFORE = timedelta(seconds=10)
SETTLE_AFTER = timedelta(seconds=120)
# "Not delivered" only once history is stored this far past that stretch: WeChat lists
# some records late, and the sync re-reads as much (messaging.sync.OVERLAP).
SETTLE_MARGIN = timedelta(minutes=10)

ERRCODE_WINDOW_CLOSED = 45015
ERRCODE_BUDGET_USED = 45047

# What a message's `error` says, stored in English and translated for each viewer.
OUTCOME_UNKNOWN = _noop(
    "WeChat did not confirm this message, so it may or may not have been delivered. "
    "kfadmin will not send it again by itself; it will check WeChat's history."
)
LOST_IN_FLIGHT = _noop(
    "kfadmin lost track of this message while sending it, so WeChat may or may not have "
    "delivered it. kfadmin will check WeChat's history."
)
NOT_DELIVERED = _noop(
    "WeChat's history has no copy of this message: it was not delivered. Send it again "
    "if it is still needed."
)
CONFIRMED_BY_HISTORY = _noop("WeChat's history shows this message was delivered.")


def _finish(outbound: OutboundMessage, *, status: str, errcode: int | None = None, error: str = "") -> None:
    outbound.status = status
    outbound.errcode = errcode
    outbound.error = error
    fields = ["status", "errcode", "error"]
    if status == OutboundMessage.Status.SENT:
        outbound.sent_at = timezone.now()
        fields.append("sent_at")
    outbound.save(update_fields=fields)


def _audit_delivery(outbound: OutboundMessage, *, ok: bool, errcode: int | None = None, message: str = "") -> None:
    audit_event_record(
        actor=outbound.created_by,
        action="message_send",
        official_account=outbound.official_account,
        target=outbound.customer.openid,
        params={
            "outbound_id": outbound.pk,
            "msgtype": outbound.msgtype,
            "kf_account": outbound.agent.kf_account if outbound.agent else "",
            "attempt": outbound.attempts,
            "status": outbound.status,
        },
        ok=ok,
        errcode=errcode,
        message=message,
    )


def _outbound_get(outbound_id: int) -> OutboundMessage:
    return OutboundMessage.objects.select_related(
        "official_account", "customer", "agent", "created_by", "media", "thumb"
    ).get(pk=outbound_id)


# What the task stores (OutboundMessage.error, audit messages) is kept in English, the
# catalogue's source language; pages translate it for each viewer.
@translation.override("en")
def outbound_deliver(*, outbound_id: int) -> OutboundMessage | None:
    """Send one queued message to WeChat. Returns None when another delivery already
    claimed it (or it is no longer queued).

    Raises WeChatRetryableError, after putting the message back in the queue, only
    when the failure proves WeChat did not take the message (`outcome_unknown` is
    false: the connection was never established, errcode -1). Any other doubt marks
    it "unknown" and returns: it is never sent twice."""
    claimed = OutboundMessage.objects.filter(pk=outbound_id, status=OutboundMessage.Status.QUEUED).update(
        status=OutboundMessage.Status.SENDING, attempts=F("attempts") + 1, attempted_at=timezone.now()
    )
    if not claimed:
        outbound_lost_mark(outbound_id=outbound_id)
        return None
    outbound = _outbound_get(outbound_id)
    customer = outbound.customer
    # The window may have closed, or other sends used the budget, since it was queued.
    refusal = _delivery_refusal(customer)
    if refusal is not None:
        errcode, explanation = refusal
        _finish(outbound, status=OutboundMessage.Status.FAILED, errcode=errcode, error=explanation)
        _audit_delivery(outbound, ok=False, errcode=errcode, message=explanation)
        return outbound

    kf_account = outbound.agent.kf_account if outbound.agent else None
    try:
        # Files go up first (idempotent: a retry only makes another media_id), so a
        # failure here proves the message itself was not sent.
        payload = outbound_payload_ready(outbound)
    except WeChatError as error:
        return _media_not_ready(outbound, error)
    try:
        wechat_client_for(outbound.official_account).send_message(
            customer.openid, outbound.msgtype, payload, kf_account=kf_account
        )
    except WeChatError as refused:
        if not outbound_uploads_stale(refused, outbound):
            return _send_failed(outbound, refused)
        # 40007 although the upload should still live: WeChat's answer proves the
        # message was not sent, so upload again and send once more, once. The upload
        # is outside the send's handler: its failure (even a timeout) proves nothing
        # was sent, so the message goes back in the queue for the retry.
        try:
            payload = outbound_payload_ready(outbound, force=True)
        except WeChatError as error:
            return _media_not_ready(outbound, error)
        try:
            wechat_client_for(outbound.official_account).send_message(
                customer.openid, outbound.msgtype, payload, kf_account=kf_account
            )
        except WeChatError as error:
            return _send_failed(outbound, error)

    with transaction.atomic():
        _finish(outbound, status=OutboundMessage.Status.SENT)
        customer_window_consume(customer)
        outbound.record = _archive_sent(outbound, kf_account or "")
        outbound.save(update_fields=["record"])
        _audit_delivery(outbound, ok=True)
    return outbound


def _send_failed(outbound: OutboundMessage, error: WeChatError) -> OutboundMessage:
    """WeChat did not confirm the send. In doubt, "unknown" (never sent twice); proven
    untouched and transient, back in the queue and raised again for the task's retry;
    refused, failed with WeChat's reason."""
    customer = outbound.customer
    if error.outcome_unknown:
        _mark_unknown(outbound, reason=OUTCOME_UNKNOWN, detail=str(error))
        return outbound
    if isinstance(error, WeChatRetryableError):
        # Proven untouched: back in the queue so the retry can claim it; the page
        # shows why it waits.
        OutboundMessage.objects.filter(pk=outbound.pk, status=OutboundMessage.Status.SENDING).update(
            status=OutboundMessage.Status.QUEUED, errcode=error.errcode, error=error.explanation,
            due_at=timezone.now() + SEND_RETRY_DUE_AFTER,
        )
        raise error
    # WeChat knows better than kfadmin's copy: no more sends until they write.
    if isinstance(error, WeChatReplyWindowClosed):
        customer_window_close(customer)
    elif isinstance(error, WeChatSendBudgetExhausted):
        customer_budget_used_up(customer)
    _finish(outbound, status=OutboundMessage.Status.FAILED, errcode=error.errcode, error=error.explanation)
    _audit_delivery(outbound, ok=False, errcode=error.errcode, message=error.explanation)
    return outbound


def _media_not_ready(outbound: OutboundMessage, error: WeChatError) -> OutboundMessage:
    """The file could not be uploaded, so nothing was sent. Transient failures put the
    message back in the queue for the task's retry (raised again); others fail it."""
    if error.retryable:
        OutboundMessage.objects.filter(pk=outbound.pk, status=OutboundMessage.Status.SENDING).update(
            status=OutboundMessage.Status.QUEUED, errcode=error.errcode, error=error.explanation,
            due_at=timezone.now() + SEND_RETRY_DUE_AFTER,
        )
        raise error
    explanation = _("The file could not be uploaded to WeChat: %(reason)s") % {"reason": error.explanation}
    _finish(outbound, status=OutboundMessage.Status.FAILED, errcode=error.errcode, error=explanation)
    _audit_delivery(outbound, ok=False, errcode=error.errcode, message=explanation)
    return outbound


def _mark_unknown(outbound: OutboundMessage, *, reason: str, detail: str) -> bool:
    """WeChat may have delivered the message: never send it again by itself, count it
    against the customer's budget (refusing a later send beats WeChat's 45047), and
    leave it for the history sync to settle."""
    with transaction.atomic():
        changed = OutboundMessage.objects.filter(pk=outbound.pk, status=OutboundMessage.Status.SENDING).update(
            status=OutboundMessage.Status.UNKNOWN, errcode=None, error=reason
        )
        if not changed:
            return False
        outbound.refresh_from_db(fields=["status", "errcode", "error", "attempts"])
        customer_window_consume(outbound.customer)
        _audit_delivery(outbound, ok=False, message=f"{reason} ({detail})")
    return True


def outbound_lost_mark(*, outbound_id: int, now: datetime | None = None) -> bool:
    """A message still "sending" long after its attempt began: the worker that
    claimed it died during the WeChat call. Whether WeChat delivered it is unknown,
    so it is not sent again; it becomes "unknown" for the history sync to settle."""
    cut = (now or timezone.now()) - SEND_STALE_AFTER
    lost = (
        OutboundMessage.objects.filter(pk=outbound_id, status=OutboundMessage.Status.SENDING)
        .filter(Q(attempted_at__lt=cut) | Q(attempted_at__isnull=True, created_at__lt=cut))
        .exists()
    )
    if not lost:
        return False
    return _mark_unknown(_outbound_get(outbound_id), reason=LOST_IN_FLIGHT, detail="the worker stopped mid-send")


def _delivery_refusal(customer: Customer) -> tuple[int, str] | None:
    """The check of `messaging.services.send_refusal` for the message being delivered
    (it is one of the pending ones there, so it does not count against itself here):
    the errcode WeChat would answer and its sentence, or None."""
    now = timezone.now()
    if not customer.window_running(now):
        return ERRCODE_WINDOW_CLOSED, _(explain(ERRCODE_WINDOW_CLOSED))
    if customer.sends_left(now) <= 0:
        return ERRCODE_BUDGET_USED, _(explain(ERRCODE_BUDGET_USED))
    return None


def _archive_sent(outbound: OutboundMessage, worker: str) -> MessageRecord:
    """Archive the send as WeChat's history will show it (source=kfadmin), so search
    finds it before the next history sync, which reconciles it with WeChat's copy."""
    text = archive_text(outbound.msgtype, outbound.payload)
    at = outbound.sent_at or timezone.now()
    digest = record_digest(worker, outbound.customer.openid, MessageRecord.OperCode.AGENT_SENT, text)
    seq = MessageRecord.objects.filter(official_account=outbound.official_account, time=at, digest=digest).count()
    archived = MessageRecord.objects.create(
        official_account=outbound.official_account,
        time=at,
        worker=worker,
        openid=outbound.customer.openid,
        opercode=MessageRecord.OperCode.AGENT_SENT,
        text=text,
        digest=digest,
        seq=seq,
        source=MessageRecord.Source.KFADMIN,
    )
    archive_changed(account_id=outbound.official_account_id, changes=[(archived.openid, at)])
    return archived


@translation.override("en")
def outbound_give_up(*, outbound_id: int, error: WeChatError) -> OutboundMessage | None:
    """Retries are used up on failures that each proved WeChat did not take the
    message: it failed, and may be sent again."""
    outbound = (
        OutboundMessage.objects.select_related("official_account", "customer", "agent", "created_by")
        .filter(pk=outbound_id, status=OutboundMessage.Status.QUEUED)
        .first()
    )
    if outbound is None:
        return None
    reason = _("WeChat could not be reached after several attempts: %(reason)s Send it again.") % {
        "reason": error.explanation
    }
    _finish(outbound, status=OutboundMessage.Status.FAILED, errcode=error.errcode, error=reason)
    _audit_delivery(outbound, ok=False, errcode=error.errcode, message=reason)
    return outbound


def _wechat_copy(outbound: OutboundMessage, at: datetime) -> MessageRecord | None:
    """WeChat's record of this send in the archive: an agent message to the same
    customer with the text WeChat's history shows for it (by the same agent, when one
    was named), from just before the attempt to SETTLE_AFTER after it, that no other
    message of kfadmin's already stands for. The earliest such record."""
    records = (
        MessageRecord.objects.filter(
            official_account=outbound.official_account,
            openid=outbound.customer.openid,
            opercode=MessageRecord.OperCode.AGENT_SENT,
            text=archive_text(outbound.msgtype, outbound.payload),
            time__gte=at - SETTLE_BEFORE,
            time__lte=at + SETTLE_AFTER,
            outbound__isnull=True,
        )
        # kfadmin's own provisional copies stand for messages it saw delivered.
        .exclude(source=MessageRecord.Source.KFADMIN)
    )
    if outbound.agent is not None:
        records = records.filter(worker=outbound.agent.kf_account)
    return records.order_by("time", "id").first()


@translation.override("en")
def outbound_unknown_settle(*, account: OfficialAccount, stored_until: datetime | None) -> tuple[int, int]:
    """Settle the account's messages of unknown outcome from the archive; for the
    history sync, after it stored new records.

    WeChat's copy of a message in the records → sent (linked to that record). No copy,
    while the history is completely stored (`stored_until`, the sync's cursor) past
    the stretch where it would be plus SETTLE_MARGIN → failed, "not delivered", which
    the person may send again. Otherwise it stays unknown. The budget counted when it
    became unknown is left as it is: refusing a send beats WeChat's 45047.
    Returns (sent, not delivered)."""
    sent = failed = 0
    unknown = (
        OutboundMessage.objects.filter(official_account=account, status=OutboundMessage.Status.UNKNOWN)
        .select_related("official_account", "customer", "agent", "created_by")
        .order_by("attempted_at", "id")
    )
    for outbound in unknown:
        at = outbound.attempted_at or outbound.created_at
        with transaction.atomic():
            copy = _wechat_copy(outbound, at)
            rows = OutboundMessage.objects.filter(pk=outbound.pk, status=OutboundMessage.Status.UNKNOWN)
            if copy is not None:
                if rows.update(status=OutboundMessage.Status.SENT, sent_at=copy.time, record=copy, error=""):
                    outbound.status = OutboundMessage.Status.SENT
                    _audit_delivery(outbound, ok=True, message=CONFIRMED_BY_HISTORY)
                    sent += 1
            elif stored_until is not None and stored_until >= at + SETTLE_AFTER + SETTLE_MARGIN:
                if rows.update(status=OutboundMessage.Status.FAILED, error=NOT_DELIVERED):
                    outbound.status = OutboundMessage.Status.FAILED
                    _audit_delivery(outbound, ok=False, message=NOT_DELIVERED)
                    failed += 1
    return sent, failed


# --------------------------------------------------------------------------- the task
# One OutboundMessage id in. The service claims the row with a conditional update
# (queued → sending), so a redelivered or duplicated task sends nothing twice; that
# makes acks_late safe. Only the client's transient errors are retried, with
# exponential backoff and jitter, and only those that prove WeChat never took the
# message (the send is not idempotent); when the retries are used up the message is
# marked failed with the reason, so the page never shows "queued" forever. The outbox
# sweep picks up what never reached a worker.

# Celery's own exponential backoff with full jitter: 2 s, 4 s, 8 s... capped at a
# minute, five retries. autoretry_for only sees the errors the task lets through: on
# the last attempt it gives the message up instead, so it never stays "queued".
SEND_RETRY: dict[str, Any] = {
    "autoretry_for": (WeChatRetryableError,),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 5,
}


# Routed to the "send" queue by settings.CELERY_TASK_ROUTES ("*.send_*").
# The name it had when it lived in messaging.tasks: messages already in a broker
# carry that name.
@shared_task(
    name="messaging.tasks.send_message_task", bind=True, acks_late=True, ignore_result=True, **SEND_RETRY
)
def send_message_task(self, outbound_id: int) -> str:
    """Deliver one queued message; returns its status ("skipped" when another
    delivery already has it). Retried only on failures that prove WeChat did not
    take the message; a doubtful one leaves it "unknown" (see outbound_deliver)."""
    try:
        outbound = outbound_deliver(outbound_id=outbound_id)
    except WeChatRetryableError as error:
        if self.request.retries < self.max_retries:
            raise  # retried by autoretry_for, with backoff
        given_up = outbound_give_up(outbound_id=outbound_id, error=error)
        return given_up.status if given_up else "skipped"
    return outbound.status if outbound is not None else "skipped"
