"""Sending kf messages from kfadmin, the typing indicator, and audited exports.

A send is two steps. `outbound_queue` (in the request) refuses what WeChat would
reject for the reply window or budget, stores an `OutboundMessage(status=queued)` and
enqueues `send_message_task` once the transaction commits. `outbound_deliver` (in the
worker) claims the row with a conditional update queued → sending, so two deliveries
of the same id send once, checks the window again (other sends may have used it up
meanwhile), calls WeChat and records the outcome.

WeChat's send is not idempotent, so a failed call is sent again only when the failure
proves WeChat never took it (the connection was never established, errcode -1).
Any other doubt (a read timeout, a dropped connection, a 5xx, a worker that died
mid-call) makes the message "unknown": not sent again, its budget counted as used,
and settled by the history sync (`outbound_unknown_settle`): WeChat's copy of it in
the records means sent, no copy in a fully stored stretch of history means failed
("not delivered"), which the person may send again (`outbound_resend`).

If the broker is down when a message is queued, it stays queued and the outbox sweep
(`outbound_sweep`, periodic) enqueues it once the workers are back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop as _noop
from kombu.exceptions import OperationalError as KombuOperationalError

from accounts.audit import audit_event_record
from accounts.clients import wechat_client_for
from accounts.models import Agent, OfficialAccount, SyncState
from kfadmin.wechat import (
    WeChatError,
    WeChatReplyWindowClosed,
    WeChatRetryableError,
    WeChatSendBudgetExhausted,
    explain,
)
from messaging.models import (
    SEND_STALE_AFTER,
    ConversationSeen,
    MessageRecord,
    OutboundMessage,
    archive_text,
    record_digest,
)
from messaging.selectors import RecordFilter, customer_window
from sessions_app.models import Customer
from sessions_app.services import (
    customer_budget_used_up,
    customer_window_close,
    customer_window_consume,
)

logger = logging.getLogger(__name__)

# A queued message this long past its due time was never handed to a worker (the
# broker was down, or lost it): the outbox sweep enqueues it again.
OUTBOX_SWEEP_AFTER = timedelta(minutes=1)
OUTBOX_SWEEP_BATCH = 200
# The longest a retry waits (messaging.tasks' backoff ceiling): a message put back in
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
ERRCODE_NO_INTERACTION = 45080

# What a message's `error` says, stored in English and translated for each viewer.
ENQUEUE_FAILED = _noop(
    "The task queue cannot be reached right now. The message is saved and will be sent "
    "when the worker is back."
)
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
) -> OutboundMessage:
    """Queue one message for sending; raises SendRefused when WeChat would refuse it.

    The task is enqueued once the transaction commits. If the broker cannot be reached
    then, the message stays queued with ENQUEUE_FAILED as its note (`awaits_worker`)
    and the outbox sweep enqueues it later; the caller is not failed for it."""
    refusal = send_refusal(customer=customer)
    params = {"openid": customer.openid, "msgtype": msgtype, "kf_account": agent.kf_account if agent else ""}
    if resend_of is not None:
        params["resend_of"] = resend_of.pk
    if refusal is not None:
        audit_event_record(
            actor=actor, action="message_send", official_account=account, target=customer.openid,
            params=params, ok=False, errcode=refusal.errcode, message=refusal.explanation,
        )
        raise refusal
    with transaction.atomic():
        outbound = OutboundMessage.objects.create(
            official_account=account,
            customer=customer,
            agent=agent,
            msgtype=msgtype,
            payload=payload,
            created_by=actor if getattr(actor, "is_authenticated", False) else None,
            resend_of=resend_of,
        )
        audit_event_record(
            actor=actor, action="message_queue", official_account=account, target=customer.openid,
            params={**params, "outbound_id": outbound.pk},
        )
        transaction.on_commit(partial(outbound_enqueue, outbound_id=outbound.pk))
    return outbound


def outbound_enqueue(*, outbound_id: int) -> bool:
    """Hand a queued message to the workers; False when the broker cannot be reached.

    Then the message stays queued and says it will be sent when the worker is back;
    the outbox sweep enqueues it again. Sending a duplicate task is harmless (the
    delivery claims the row), so this may be called again at any time."""
    # The one import inside a function: the task runs this module's services, so
    # messaging.tasks imports this module, and a service enqueues the task.
    from messaging.tasks import send_message_task

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
    return OutboundMessage.objects.select_related("official_account", "customer", "agent", "created_by").get(
        pk=outbound_id
    )


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
        _give_up_if_lost(outbound_id)
        return None
    outbound = _outbound_get(outbound_id)
    customer = outbound.customer
    # The window may have closed, or other sends used the budget, since it was queued.
    refusal = _delivery_refusal(customer)
    if refusal is not None:
        _finish(outbound, status=OutboundMessage.Status.FAILED, errcode=refusal.errcode, error=refusal.explanation)
        _audit_delivery(outbound, ok=False, errcode=refusal.errcode, message=refusal.explanation)
        return outbound

    kf_account = outbound.agent.kf_account if outbound.agent else None
    try:
        wechat_client_for(outbound.official_account).send_message(
            customer.openid, outbound.msgtype, outbound.payload, kf_account=kf_account
        )
    except WeChatError as error:
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
            raise
        # WeChat knows better than kfadmin's copy: no more sends until they write.
        if isinstance(error, WeChatReplyWindowClosed):
            customer_window_close(customer)
        elif isinstance(error, WeChatSendBudgetExhausted):
            customer_budget_used_up(customer)
        _finish(outbound, status=OutboundMessage.Status.FAILED, errcode=error.errcode, error=error.explanation)
        _audit_delivery(outbound, ok=False, errcode=error.errcode, message=error.explanation)
        return outbound

    with transaction.atomic():
        _finish(outbound, status=OutboundMessage.Status.SENT)
        customer_window_consume(customer)
        outbound.record = _archive_sent(outbound, kf_account or "")
        outbound.save(update_fields=["record"])
        _audit_delivery(outbound, ok=True)
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


def _give_up_if_lost(outbound_id: int, *, now: datetime | None = None) -> bool:
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


def _delivery_refusal(customer: Customer) -> SendRefused | None:
    """The check of `send_refusal` for the message being delivered (it is one of the
    pending ones there, so it does not count against itself here)."""
    now = timezone.now()
    if not customer.window_running(now):
        return SendRefused(ERRCODE_WINDOW_CLOSED, _(explain(ERRCODE_WINDOW_CLOSED)))
    if customer.sends_left(now) <= 0:
        return SendRefused(ERRCODE_BUDGET_USED, _(explain(ERRCODE_BUDGET_USED)))
    return None


def _archive_sent(outbound: OutboundMessage, worker: str) -> MessageRecord:
    """Archive the send as WeChat's history will show it (source=kfadmin), so search
    finds it before the next history sync, which reconciles it with WeChat's copy."""
    text = archive_text(outbound.msgtype, outbound.payload)
    at = outbound.sent_at or timezone.now()
    digest = record_digest(worker, outbound.customer.openid, MessageRecord.OperCode.AGENT_SENT, text)
    seq = MessageRecord.objects.filter(official_account=outbound.official_account, time=at, digest=digest).count()
    return MessageRecord.objects.create(
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
    lost = [pk for pk in stuck if _give_up_if_lost(pk, now=now)]
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
        try:
            again = outbound_queue(
                account=original.official_account, customer=original.customer, agent=original.agent,
                msgtype=original.msgtype, payload=original.payload, actor=actor, resend_of=original,
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


def history_export_record(*, account: OfficialAccount, actor, export_format: str, filters: RecordFilter) -> None:
    """Audit an export of the archive (who took which records out, and how): the
    filters that were set."""
    audit_event_record(
        actor=actor, action="history_export", official_account=account, target=export_format,
        params={key: _jsonable(value) for key, value in filters.given().items()},
    )


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


def conversation_watch(*, account: OfficialAccount, now: datetime | None = None) -> None:
    """Someone has a conversation of `account` open: keep the live tail reading its
    records for WATCH_FOR. Written at most twice a minute per account, whatever the
    number of viewers (a conditional UPDATE, and an INSERT only the first time)."""
    now = now or timezone.now()
    until = now + WATCH_FOR
    updated = (
        SyncState.objects.filter(official_account=account, job=SyncState.Job.TAIL)
        .filter(Q(watched_until__isnull=True) | Q(watched_until__lt=until - WATCH_FOR / 2))
        .update(watched_until=until)
    )
    if not updated:
        SyncState.objects.bulk_create(
            [SyncState(official_account=account, job=SyncState.Job.TAIL, watched_until=until)], ignore_conflicts=True
        )


def conversation_seen_mark(*, account: OfficialAccount, user, openid: str, now: datetime | None = None) -> None:
    """`user` has looked at the conversation with `openid` now: its messages so far
    are no longer unread for them."""
    ConversationSeen.objects.bulk_create(
        [ConversationSeen(user=user, official_account=account, openid=openid, seen_at=now or timezone.now())],
        update_conflicts=True,
        unique_fields=["user", "official_account", "openid"],
        update_fields=["seen_at"],
    )
