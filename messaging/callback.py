"""The callback receiver: WeChat's message push for one official account.

`GET /wechat/callback/<appid>/` answers WeChat's URL verification; `POST` receives
pushes in plaintext, compatible or safe (AES) mode (wechat-kf-api.md §7). Customer
messages and the kf session events (`kf_create_session`, `kf_close_session`,
`kf_switch_session`) are archived as `MessageRecord(source=callback)`; the customer's
reply window and the session rows follow (through sessions_app's services and
`sessions_app.transitions`). Follow, menu-click and scan events open
the short reply window.

The query's signature covers only token, timestamp and nonce, not the body, and
every URL WeChat called sits in some access log; so a push is accepted only when
its timestamp is within 5 minutes of our clock, its (timestamp, nonce) was never
used before (`CallbackNonce`, claimed in the same transaction as the writes), it
is encrypted if the account runs in safe mode, and every field has the shape
WeChat gives it. Anything else gets a 4xx and changes nothing. An unknown appid,
an inactive account and a bad signature get the same answer, so an outsider
cannot tell which appids exist.

WeChat waits 5 seconds and then retries the same push (three attempts), so the work
is a few small writes in one transaction, and a redelivered push changes nothing.
Tokens and keys never reach the log.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import time
from datetime import UTC, datetime
from functools import partial

from django.contrib.auth.decorators import login_not_required
from django.db import IntegrityError, transaction
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from accounts.models import OfficialAccount
from kfadmin.wechat import (
    MAX_CLOCK_SKEW,
    CallbackMessage,
    WeChatCallbackError,
    WeChatCrypto,
    check_signature,
    check_timestamp,
    msg_signature,
    parse_message,
    parse_xml,
)
from messaging.media import INBOUND_KINDS, media_inbound_register
from messaging.models import CallbackNonce, MessageRecord, record_digest
from messaging.services import BROKER_ERRORS
from messaging.tasks import fetch_media_task
from sessions_app.models import Customer
from sessions_app.services import Touch, customer_touch, customer_window_close
from sessions_app.transitions import SessionEvent, session_event_apply, session_waiting_wrote

logger = logging.getLogger(__name__)

# What the archive shows for a message that is not text (as WeChat's records do).
_PLACEHOLDERS = {
    "image": "[image]",
    "voice": "[voice]",
    "video": "[video]",
    "shortvideo": "[video]",
    "location": "[location]",
    "link": "[link]",
    "file": "[file]",
}
# Events that grant the short reply window (3 sends within a minute).
_WINDOW_EVENTS = {"subscribe", "scan", "click", "scancode_push", "scancode_waitmsg"}
_SESSION_EVENTS: dict[str, MessageRecord.OperCode] = {
    SessionEvent.CREATE: MessageRecord.OperCode.ACCEPTED,
    SessionEvent.CLOSE: MessageRecord.OperCode.CLOSED,
    SessionEvent.SWITCH: MessageRecord.OperCode.TRANSFERRED,
}
_NONCE_RE = re.compile(r"[A-Za-z0-9]{1,32}")
# Checked when no account matches, so an unknown appid costs what a wrong signature does.
_NO_TOKEN = secrets.token_hex(16)
FORBIDDEN = "forbidden"


class CallbackForbidden(WeChatCallbackError):
    """The push is not from WeChat for this account (or no longer may be): 403."""


class CallbackReplayed(CallbackForbidden):
    """The (timestamp, nonce) of the push was used before."""


def _text(status: int, message: str) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def _now() -> float:
    """The receiver's clock (tests pin it to the time of their fixed pushes)."""
    return time.time()


# --------------------------------------------------------------------------- view


@csrf_exempt
@login_not_required
@require_http_methods(["GET", "POST"])
def wechat_callback(request: HttpRequest, appid: str) -> HttpResponse:
    account = OfficialAccount.objects.filter(appid=appid, is_active=True).first()
    known = account is not None and bool(account.callback_token)
    query = request.GET
    timestamp = query.get("timestamp", "")
    nonce = query.get("nonce", "")
    token = account.callback_token if account is not None and known else _NO_TOKEN
    signed = check_signature(token, query.get("signature", ""), timestamp, nonce)
    if account is None or not (known and signed):
        # The same answer for both, so the appids that exist stay unknown outside.
        reason = "bad signature" if known else "unknown, inactive or tokenless account"
        logger.warning("Callback for appid %r refused: %s.", appid, reason)
        return _text(403, FORBIDDEN)
    try:
        pushed_at = check_timestamp(timestamp, now=_now())
        if not _NONCE_RE.fullmatch(nonce):
            raise CallbackForbidden(None, "The push has no valid nonce.")
    except WeChatCallbackError as exc:
        logger.warning("Callback for appid %r refused: %s", appid, exc.errmsg)
        return _text(403, exc.errmsg)

    if request.method == "GET":
        # URL verification: echo echostr back verbatim.
        return _text(200, query.get("echostr", ""))

    try:
        message = _message(account, request, timestamp=timestamp, nonce=nonce, pushed_at=pushed_at)
        callback_push_apply(account=account, message=message, timestamp=pushed_at, nonce=nonce)
    except WeChatCallbackError as exc:
        logger.warning("Callback for appid %r refused: %s", appid, exc.errmsg)
        return _text(403 if isinstance(exc, CallbackForbidden) else 400, exc.errmsg)
    # An empty passive reply: acknowledged, nothing sent back to the customer.
    return _text(200, "success")


def _message(
    account: OfficialAccount, request: HttpRequest, *, timestamp: str, nonce: str, pushed_at: int
) -> CallbackMessage:
    """The push, decrypted when encrypted, every field checked; raises
    WeChatCallbackError (CallbackForbidden for what only a forger would send)."""
    encrypted = request.GET.get("encrypt_type", "").lower() == "aes"
    if account.callback_mode == OfficialAccount.CallbackMode.SAFE and not encrypted:
        raise CallbackForbidden(
            None, "This official account's pushes are encrypted (safe mode); a plaintext push is refused."
        )
    xml: str | bytes
    if encrypted:
        xml = _decrypt(account, request.body, request.GET.get("msg_signature", ""), timestamp, nonce)
    else:
        xml = request.body
    message = parse_message(xml, timestamp=pushed_at)
    if account.original_id and message.to_user != account.original_id:
        raise WeChatCallbackError(None, "The push is addressed to another official account.")
    suffix = "@" + account.wechat_id.lower()
    for kf_account in (message.kf_account, message.from_kf_account, message.to_kf_account):
        if kf_account and not kf_account.lower().endswith(suffix):
            raise WeChatCallbackError(None, "The push names a kf account of another WeChat ID.")
    return message


def _decrypt(account: OfficialAccount, body: bytes, signature: str, timestamp: str, nonce: str) -> str:
    """The plaintext XML of an AES push, once its msg_signature matched."""
    if not account.encoding_aes_key:
        raise WeChatCallbackError(None, "This official account has no EncodingAESKey configured.")
    encrypted = parse_xml(body).get("Encrypt", "")
    if not encrypted:
        raise WeChatCallbackError(None, "The callback body has no <Encrypt> element.")
    expected = msg_signature(account.callback_token, timestamp, nonce, encrypted)
    if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
        raise CallbackForbidden(None, "Message signature check failed.")
    crypto = WeChatCrypto(account.callback_token, account.encoding_aes_key, account.appid)
    return crypto.decrypt_message(body, signature, timestamp, nonce)


# --------------------------------------------------------------------------- service


def callback_push_apply(*, account: OfficialAccount, message: CallbackMessage, timestamp: int, nonce: str) -> bool:
    """Apply one checked push, once per (timestamp, nonce): raises CallbackReplayed
    for a second one. Returns False when it was a redelivery (nothing changed)."""
    # Pairs this old are refused by their timestamp before the table is asked.
    CallbackNonce.objects.filter(timestamp__lt=int(_now()) - MAX_CLOCK_SKEW).delete()
    with transaction.atomic():
        try:
            # In the push's transaction: a push that fails leaves its nonce free for
            # WeChat's retry, and a concurrent replay waits on the unique index.
            with transaction.atomic():
                CallbackNonce.objects.create(official_account=account, timestamp=timestamp, nonce=nonce)
        except IntegrityError:
            raise CallbackReplayed(None, "This push was received before (replayed timestamp and nonce).") from None
        return callback_message_record(account=account, message=message)


@transaction.atomic
def callback_message_record(*, account: OfficialAccount, message: CallbackMessage) -> bool:
    """Apply one push. Returns False when it was a redelivery (nothing changed)."""
    openid = message.from_user
    at = datetime.fromtimestamp(message.create_time, tz=UTC)
    event = message.event.lower() if message.is_event else ""

    if not message.is_event:
        text = message.content if message.msg_type == "text" else _PLACEHOLDERS.get(
            message.msg_type, f"[{message.msg_type}]"
        )
        if not _archive(account, at=at, worker="", openid=openid, opercode=MessageRecord.OperCode.RECEIVED_BY_OA, text=text):
            return False
        customer = customer_touch(account, openid, at, Touch.MESSAGE)
        session_waiting_wrote(customer=customer, at=at)
        if message.media_id and message.msg_type in INBOUND_KINDS:
            _media_arrived(account, customer, message, at=at, text=text)
        return True

    if event in _SESSION_EVENTS:
        opercode = _SESSION_EVENTS[event]
        # Shaped like WeChat's own record of the event (the agent, no text), so the
        # history sync later finds it under the same natural key.
        worker = message.to_kf_account if event == SessionEvent.SWITCH else message.kf_account
        if not _archive(account, at=at, worker=worker, openid=openid, opercode=opercode, text=""):
            return False
        session_event_apply(account=account, openid=openid, at=at, event=event, kf_account=worker)
        return True

    if event in _WINDOW_EVENTS:
        # Events carry no id: WeChat's dedup key is (FromUserName, CreateTime), which
        # the touch rule already honours (an interaction is counted once).
        customer_touch(account, openid, at, Touch.EVENT)
        return True
    if event == "unsubscribe":
        gone = Customer.objects.filter(official_account=account, openid=openid).first()
        if gone is not None:
            customer_window_close(gone, now=at)
        return True
    logger.info("Callback for appid %s: %s %s ignored.", account.appid, message.msg_type, event)
    return True


def _media_arrived(account: OfficialAccount, customer: Customer, message: CallbackMessage, *, at: datetime, text: str) -> None:
    """Keep a customer's image or voice: fetched by a task within WeChat's 3 days."""
    record = MessageRecord.objects.filter(
        official_account=account, time=at, seq=0,
        digest=record_digest("", message.from_user, MessageRecord.OperCode.RECEIVED_BY_OA, text),
    ).first()
    media = media_inbound_register(
        account=account, customer=customer, record=record, msg_type=message.msg_type, media_id=message.media_id
    )
    if media is not None:
        transaction.on_commit(partial(_fetch_enqueue, media.pk))


def _fetch_enqueue(media_file_id: int) -> None:
    try:
        fetch_media_task.delay(media_file_id)
    except BROKER_ERRORS as exc:
        # The fetch sweep (periodic) enqueues what is still waiting.
        logger.warning("Could not enqueue the fetch of media file %s (%s).", media_file_id, exc)


def _archive(
    account: OfficialAccount, *, at: datetime, worker: str, openid: str, opercode: int, text: str
) -> bool:
    """Store the record under its natural key; False if this push was stored before."""
    digest = record_digest(worker, openid, int(opercode), text)
    try:
        with transaction.atomic():
            MessageRecord.objects.create(
                official_account=account,
                time=at,
                worker=worker,
                openid=openid,
                opercode=int(opercode),
                text=text,
                digest=digest,
                seq=0,
                source=MessageRecord.Source.CALLBACK,
            )
    except IntegrityError:
        existing = MessageRecord.objects.filter(
            official_account=account, time=at, digest=digest, seq=0
        ).values_list("source", flat=True).first()
        # Our own earlier copy: a WeChat retry. A copy from the history sync: the
        # session effects have not been applied by a callback yet.
        return existing != MessageRecord.Source.CALLBACK
    return True
