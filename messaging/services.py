"""Sending kf messages from kfadmin, the typing indicator, and audited exports.

A send is two steps. `outbound_queue` (in the request) refuses what WeChat would
reject for the reply window or budget, stores an `OutboundMessage(status=queued)` and
enqueues `send_message_task` once the transaction commits. `outbound_deliver` (in the
worker) claims the row with a conditional update queued → sending, so two deliveries
of the same id send once, checks the window again (other sends may have used it up
meanwhile), calls WeChat and records sent or failed with the errcode and a sentence.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from accounts.audit import audit_event_record
from accounts.clients import wechat_client_for
from accounts.models import Agent, OfficialAccount
from kfadmin.wechat import (
    WeChatError,
    WeChatReplyWindowClosed,
    WeChatRetryableError,
    WeChatSendBudgetExhausted,
    explain,
)
from messaging.models import MessageRecord, OutboundMessage, record_digest
from sessions_app.models import Customer
from sessions_app.selectors import customer_window_state
from sessions_app.services import (
    customer_budget_used_up,
    customer_window_close,
    customer_window_consume,
)

# A message still queued or sending after this long is stuck: no worker took it, or a
# worker died while calling WeChat (see outbound_deliver).
SEND_STALE_AFTER = timedelta(minutes=10)

ERRCODE_WINDOW_CLOSED = 45015
ERRCODE_BUDGET_USED = 45047
ERRCODE_NO_INTERACTION = 45080


class SendRefused(Exception):
    """kfadmin will not ask WeChat: it would refuse for the window, budget or the
    typing rule. `errcode` is the code WeChat would have answered."""

    def __init__(self, errcode: int, explanation: str):
        self.errcode = errcode
        self.explanation = explanation
        super().__init__(explanation)


def send_refusal(*, customer: Customer, now: datetime | None = None) -> SendRefused | None:
    """Why WeChat would refuse one more message to `customer` now, or None."""
    state = customer_window_state(customer=customer, now=now)
    if state.expires_at is None or state.seconds_left <= 0:
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


def archive_text(msgtype: str, payload: dict[str, Any]) -> str:
    """What WeChat's chat history shows for a sent message: the text, or a tag."""
    if msgtype == OutboundMessage.MsgType.TEXT:
        return str(payload.get("content", ""))
    return f"[{msgtype}]"


def outbound_queue(
    *,
    account: OfficialAccount,
    customer: Customer,
    agent: Agent | None,
    msgtype: str,
    payload: dict[str, Any],
    actor,
) -> OutboundMessage:
    """Queue one message for sending; raises SendRefused when WeChat would refuse it."""
    from messaging.tasks import send_message_task

    refusal = send_refusal(customer=customer)
    params = {"openid": customer.openid, "msgtype": msgtype, "kf_account": agent.kf_account if agent else ""}
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
        )
        audit_event_record(
            actor=actor, action="message_queue", official_account=account, target=customer.openid,
            params={**params, "outbound_id": outbound.pk},
        )
        send_message_task.delay_on_commit(outbound.pk)
    return outbound


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
        },
        ok=ok,
        errcode=errcode,
        message=message,
    )


# What the task stores (OutboundMessage.error, audit messages) is kept in English, the
# catalogue's source language; pages translate it for each viewer.
@translation.override("en")
def outbound_deliver(*, outbound_id: int) -> OutboundMessage | None:
    """Send one queued message to WeChat. Returns None when another delivery already
    claimed it (or it is no longer queued). Raises WeChatRetryableError after putting
    the message back in the queue, for the task to retry later."""
    claimed = OutboundMessage.objects.filter(pk=outbound_id, status=OutboundMessage.Status.QUEUED).update(
        status=OutboundMessage.Status.SENDING, attempts=F("attempts") + 1
    )
    if not claimed:
        _give_up_if_lost(outbound_id)
        return None
    outbound = OutboundMessage.objects.select_related("official_account", "customer", "agent", "created_by").get(
        pk=outbound_id
    )
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
    except WeChatRetryableError as error:
        # Back in the queue so the retry can claim it; the page shows why it waits.
        OutboundMessage.objects.filter(pk=outbound.pk, status=OutboundMessage.Status.SENDING).update(
            status=OutboundMessage.Status.QUEUED, errcode=error.errcode, error=error.explanation
        )
        raise
    except WeChatError as error:
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
        _archive_sent(outbound, kf_account or "")
        _audit_delivery(outbound, ok=True)
    return outbound


def _give_up_if_lost(outbound_id: int) -> None:
    """A redelivered task finds its message still "sending" long after the claim: the
    worker that claimed it died during the WeChat call. Whether WeChat delivered it is
    unknown, so it is not sent again; it is marked failed with that explanation."""
    lost = OutboundMessage.objects.filter(
        pk=outbound_id, status=OutboundMessage.Status.SENDING, created_at__lt=timezone.now() - SEND_STALE_AFTER
    ).update(
        status=OutboundMessage.Status.FAILED,
        error=_(
            "kfadmin lost track of this message while sending it, so WeChat may or may not "
            "have delivered it. Check with the customer before sending it again."
        ),
    )
    if lost:
        outbound = OutboundMessage.objects.select_related("official_account", "customer", "agent", "created_by").get(
            pk=outbound_id
        )
        _audit_delivery(outbound, ok=False, message=outbound.error)


def _delivery_refusal(customer: Customer) -> SendRefused | None:
    now = timezone.now()
    if customer.window_expires_at is None or customer.window_expires_at <= now:
        return SendRefused(ERRCODE_WINDOW_CLOSED, _(explain(ERRCODE_WINDOW_CLOSED)))
    if customer.window_remaining <= 0:
        return SendRefused(ERRCODE_BUDGET_USED, _(explain(ERRCODE_BUDGET_USED)))
    return None


def _archive_sent(outbound: OutboundMessage, worker: str) -> None:
    """Archive the send as WeChat's history will show it (source=kfadmin), so search
    finds it before the next history sync, which reconciles it with WeChat's copy."""
    text = archive_text(outbound.msgtype, outbound.payload)
    at = outbound.sent_at or timezone.now()
    digest = record_digest(worker, outbound.customer.openid, MessageRecord.OperCode.AGENT_SENT, text)
    seq = MessageRecord.objects.filter(official_account=outbound.official_account, time=at, digest=digest).count()
    MessageRecord.objects.create(
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
    """Retries are used up: the message failed for a transient reason."""
    outbound = (
        OutboundMessage.objects.select_related("official_account", "customer", "agent", "created_by")
        .filter(pk=outbound_id)
        .exclude(status=OutboundMessage.Status.SENT)
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


def typing_refusal(*, customer: Customer, now: datetime | None = None) -> SendRefused | None:
    """Typing needs an open window and a customer interaction in the last 30 seconds."""
    state = customer_window_state(customer=customer, now=now)
    if state.expires_at is None or state.seconds_left <= 0 or customer.window_remaining <= 0:
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


def history_export_record(*, account: OfficialAccount, actor, export_format: str, filters: dict[str, Any]) -> None:
    """Audit an export of the archive (who took which records out, and how)."""
    audit_event_record(
        actor=actor, action="history_export", official_account=account, target=export_format,
        params={key: _jsonable(value) for key, value in filters.items()},
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Agent):
        return value.kf_account
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value
