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
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop as _noop
from kombu.exceptions import OperationalError as KombuOperationalError

from accounts.audit import audit_event_record
from accounts.clients import wechat_client_for
from accounts.models import Agent, OfficialAccount, SyncState
from kfadmin.wechat import WeChatError, explain
from messaging.delivery import (
    ERRCODE_BUDGET_USED,
    ERRCODE_WINDOW_CLOSED,
    outbound_lost_mark,
    send_message_task,
)
from messaging.media import MediaUpload, media_file_store
from messaging.models import SEND_STALE_AFTER, ConversationSeen, MediaFile, OutboundMessage
from messaging.selectors import RecordFilter, customer_window
from sessions_app.models import Customer

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
