"""Files kfadmin sends and receives, and the account's library (issue 10 §4).

Kept apart from services.py and selectors.py so the media flow reads in one place:

- `media_file_store` (in the request): checks a file against WeChat's limits from its
  bytes, keeps it under MEDIA_ROOT with the sniffed type. Nothing is sent to WeChat
  in the request.
- `media_send_ready` (in the worker, before the send): a media_id WeChat still holds,
  uploading the file (again, once its 3 days are up). Uploading is idempotent in
  effect (another upload only makes another media_id), so it may be retried freely;
  the send itself keeps the queued → sending → sent/unknown rules of services.py.
- `media_inbound_register` / `media_inbound_fetch`: a customer's image or voice from a
  callback, fetched from WeChat by a task within its 3 days, checked, kept.
- `library_sync` / `library_search`: the permanent materials and published articles,
  copied into the database by a periodic task, searched by the composer's picker.

Quick replies (or anything else that sends a kept file) use `media_file_store` once
and pass the MediaFile to `outbound_queue(media=…)` for every send.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.files.base import ContentFile
from django.core.paginator import Page, Paginator
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_noop as _noop

from accounts.access import AccountContext
from accounts.audit import audit_event_record
from accounts.clients import wechat_client_for
from accounts.models import OfficialAccount, SyncState
from accounts.sync import sync_state_recording
from kfadmin.wechat import (
    CONTENT_TYPES,
    MEDIA_LIFETIME_SECONDS,
    WeChatError,
    WeChatInvalidArgument,
    WeChatRateLimited,
    WeChatTokenError,
    media_problem,
    sniff_format,
)
from kfadmin.wechat.validation import EXTENSIONS, MAX_MATERIALS_PER_PAGE
from messaging.models import LibraryItem, MediaFile, MessageRecord, OutboundMessage, QuickReply
from messaging.selectors import customer_open_to_agent
from sessions_app.models import Customer

logger = logging.getLogger(__name__)

# A customer's media must be fetched within WeChat's 3 days; a failed fetch is tried
# again by the task's retries, then given up with the reason shown in the timeline.
INBOUND_KINDS = {"image": MediaFile.Kind.IMAGE, "voice": MediaFile.Kind.VOICE}
LIBRARY_PAGE_SIZE = 24
# A sync reads at most this many items of each kind (WeChat pages by 20).
LIBRARY_SYNC_LIMIT = 2000

FETCH_EXPIRED = _noop(
    "WeChat no longer holds this file (customers' media are kept 3 days), so kfadmin could not keep a copy."
)


class MediaRefused(Exception):
    """A file WeChat would not take, with the sentence naming the limit."""

    def __init__(self, explanation: str):
        self.explanation = explanation
        super().__init__(explanation)


@dataclass(frozen=True)
class MediaUpload:
    """A file a person gave (picked, dropped or pasted), not stored yet."""

    kind: str
    content: bytes
    name: str = ""


def media_check(*, kind: str, content: bytes) -> str | None:
    """Why WeChat would refuse this file as `kind`, naming the limit; None if fine."""
    return media_problem(kind, content)


def _store(
    *, account: OfficialAccount, kind: str, content: bytes, name: str, direction: str, customer: Customer | None, actor
) -> MediaFile:
    fmt = sniff_format(content) or "bin"
    media = MediaFile(
        official_account=account,
        customer=customer,
        kind=kind,
        direction=direction,
        name=(name or "")[:255],
        content_type=CONTENT_TYPES.get(fmt, "application/octet-stream"),
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    media.file.save(f"{secrets.token_hex(12)}.{EXTENSIONS.get(fmt, 'bin')}", ContentFile(content), save=False)
    media.save()
    return media


def media_file_store(
    *, account: OfficialAccount, kind: str, content: bytes, name: str = "", actor, customer: Customer | None = None
) -> MediaFile:
    """Keep a file to send (checked against WeChat's limits for `kind` first; raises
    MediaRefused naming the limit). Audited; the upload to WeChat happens when a
    message using it is delivered."""
    problem = media_check(kind=kind, content=content)
    if problem is not None:
        raise MediaRefused(problem)
    with transaction.atomic():
        media = _store(
            account=account, kind=kind, content=content, name=name,
            direction=MediaFile.Direction.SENT, customer=customer, actor=actor,
        )
        audit_event_record(
            actor=actor, action="media_store", official_account=account,
            target=customer.openid if customer is not None else "",
            params={"media_file": media.pk, "kind": kind, "size": media.size, "content_type": media.content_type},
        )
    return media


def media_send_ready(*, media: MediaFile, now: datetime | None = None, force: bool = False) -> str:
    """A media_id WeChat holds for this file: the last upload's while it lives, else a
    fresh upload (the row is locked, so two workers sending the same file upload it
    once). `force` uploads again although kfadmin believed the last one alive (WeChat
    answered 40007). Raises WeChatError; nothing was sent to the customer then."""
    now = now or timezone.now()
    with transaction.atomic():
        row = MediaFile.objects.select_for_update().get(pk=media.pk)
        if row.upload_live(now) and not (force and row.media_id == media.media_id):
            media.media_id, media.expires_at = row.media_id, row.expires_at
            return row.media_id
        with row.file.open("rb") as handle:
            content = handle.read()
        uploaded = wechat_client_for(row.official_account).upload_media(row.kind, content)
        created = datetime.fromtimestamp(uploaded.created_at, tz=UTC) if uploaded.created_at else now
        row.media_id = uploaded.media_id
        row.expires_at = created + timedelta(seconds=MEDIA_LIFETIME_SECONDS)
        row.uploads += 1
        row.save(update_fields=["media_id", "expires_at", "uploads"])
        audit_event_record(
            actor=None, action="media_upload", official_account=row.official_account,
            target=row.customer.openid if row.customer is not None else "",
            params={"media_file": row.pk, "kind": row.kind, "upload": row.uploads},
        )
    media.media_id, media.expires_at, media.uploads = row.media_id, row.expires_at, row.uploads
    return row.media_id


def outbound_payload_ready(outbound: OutboundMessage, *, force: bool = False) -> dict:
    """The message's payload with the media_ids of its kept files filled in, uploading
    them where needed (see media_send_ready); saved on the message."""
    payload = dict(outbound.payload)
    if outbound.media is not None:
        payload["media_id"] = media_send_ready(media=outbound.media, force=force)
    if outbound.thumb is not None:
        payload["thumb_media_id"] = media_send_ready(media=outbound.thumb, force=force)
    if payload != outbound.payload:
        outbound.payload = payload
        outbound.save(update_fields=["payload"])
    return payload


def outbound_uploads_stale(error: WeChatError, outbound: OutboundMessage) -> bool:
    """WeChat refused the send for an unknown media_id (40007) although kfadmin held
    the upload alive: upload again and send once more (the refusal proves nothing
    was sent)."""
    return (
        isinstance(error, WeChatInvalidArgument)
        and error.errcode == 40007
        and (outbound.media_id is not None or outbound.thumb_id is not None)
    )


# ------------------------------------------------------------------ inbound


def media_inbound_register(
    *, account: OfficialAccount, customer: Customer | None, record: MessageRecord | None, msg_type: str, media_id: str
) -> MediaFile | None:
    """A customer's image or voice arrived by callback: remember its media_id to fetch
    (the caller enqueues the fetch task once the transaction commits). Other types
    are not kept."""
    kind = INBOUND_KINDS.get(msg_type)
    if kind is None or not media_id:
        return None
    media = MediaFile.objects.create(
        official_account=account, customer=customer, kind=kind, direction=MediaFile.Direction.RECEIVED,
        state=MediaFile.State.FETCHING, media_id=media_id[:256], record=record,
        expires_at=(record.time if record is not None else timezone.now()) + timedelta(seconds=MEDIA_LIFETIME_SECONDS),
    )
    return media


# A fetch claimed longer ago than this was left by a worker that died: taken again.
FETCH_CLAIM_STALE = timedelta(minutes=5)
# The longest a fetch waits between its retries (tasks.FETCH_RETRY's backoff cap) and
# a margin: the sweep leaves alone a fetch attempted more recently than this.
FETCH_RETRY_WAIT = timedelta(seconds=600 + 60)

FETCH_GAVE_UP = _noop("WeChat could not be reached after several attempts, so kfadmin could not keep a copy.")


def media_inbound_fetch(*, media_file_id: int, now: datetime | None = None) -> MediaFile | None:
    """Download a customer's media from WeChat and keep it, once its bytes pass the
    checks for its kind (format sniffed, size within WeChat's limits).

    The row is claimed first (a conditional UPDATE), so two runs never both download
    it; None when another run holds it or it is no longer waiting. Raises
    WeChatRetryableError for failures worth retrying (the claim is released). A quota
    used up (45009) or a token problem leaves it waiting for the sweep. A file WeChat
    no longer holds, one that fails the checks, or a refusal (e.g. 48001) is marked
    failed with the reason."""
    now = now or timezone.now()
    claimed = (
        MediaFile.objects.filter(pk=media_file_id, state=MediaFile.State.FETCHING)
        .filter(Q(fetch_started_at__isnull=True) | Q(fetch_started_at__lt=now - FETCH_CLAIM_STALE))
        .update(fetch_started_at=now, fetch_attempted_at=now)
    )
    if not claimed:
        return None
    media = MediaFile.objects.select_related("official_account", "customer").get(pk=media_file_id)
    if media.expires_at is not None and media.expires_at <= now:
        return _fetch_failed(media, FETCH_EXPIRED)
    try:
        fetched = wechat_client_for(media.official_account).get_media(media.media_id)
    except WeChatInvalidArgument as error:
        return _fetch_failed(media, error.explanation if error.errcode != 40007 else FETCH_EXPIRED)
    except (WeChatRateLimited, WeChatTokenError) as error:
        # Not the file's fault and not worth retrying at once: the sweep tries later.
        _fetch_release(media, error.explanation)
        return media
    except WeChatError as error:
        if error.retryable:
            _fetch_release(media, error.explanation)
            raise
        return _fetch_failed(media, error.explanation)
    problem = media_check(kind=media.kind, content=fetched.content) if fetched.content else _noop(
        "WeChat answered without the file."
    )
    if problem is not None:
        return _fetch_failed(media, problem)
    content = fetched.content
    fmt = sniff_format(content) or "bin"
    with transaction.atomic():
        media.file.save(f"{secrets.token_hex(12)}.{EXTENSIONS.get(fmt, 'bin')}", ContentFile(content), save=False)
        media.content_type = CONTENT_TYPES.get(fmt, "application/octet-stream")
        media.size = len(content)
        media.sha256 = hashlib.sha256(content).hexdigest()
        media.name = fetched.filename[:255]
        media.state = MediaFile.State.READY
        media.error = ""
        media.fetch_started_at = None
        media.save()
        audit_event_record(
            actor=None, action="media_fetch", official_account=media.official_account,
            target=media.customer.openid if media.customer is not None else "",
            params={"media_file": media.pk, "kind": media.kind, "size": media.size},
        )
    return media


def _fetch_release(media: MediaFile, reason: str) -> None:
    """The attempt ended without an answer about the file: still waiting, with why."""
    MediaFile.objects.filter(pk=media.pk, state=MediaFile.State.FETCHING).update(fetch_started_at=None, error=reason)
    media.fetch_started_at, media.error = None, reason


def media_fetch_give_up(*, media_file_id: int, error: WeChatError) -> MediaFile | None:
    """The fetch task's retries are used up: the media is marked failed with a
    sentence for the person (it stays so: the sweep fetches only waiting media)."""
    media = MediaFile.objects.select_related("official_account", "customer").filter(
        pk=media_file_id, state=MediaFile.State.FETCHING
    ).first()
    if media is None:
        return None
    logger.warning("Gave up fetching media file %s: %s", media.pk, error.explanation)
    return _fetch_failed(media, FETCH_GAVE_UP)


def _fetch_failed(media: MediaFile, reason: str) -> MediaFile:
    MediaFile.objects.filter(pk=media.pk).update(state=MediaFile.State.FAILED, error=reason, fetch_started_at=None)
    media.state, media.error = MediaFile.State.FAILED, reason
    audit_event_record(
        actor=None, action="media_fetch", official_account=media.official_account,
        target=media.customer.openid if media.customer is not None else "",
        params={"media_file": media.pk, "kind": media.kind}, ok=False, message=reason,
    )
    return media


def media_fetch_overdue(*, now: datetime | None = None, older_than: timedelta = timedelta(minutes=5)) -> list[int]:
    """Customer media still waiting to be fetched a while after they arrived (the
    task was lost, or WeChat's quota was used up): their ids, for the sweep to
    enqueue again. One attempted within FETCH_RETRY_WAIT is left alone: its task may
    be waiting between retries."""
    now = now or timezone.now()
    return list(
        MediaFile.objects.filter(state=MediaFile.State.FETCHING, created_at__lt=now - older_than)
        .filter(Q(fetch_attempted_at__isnull=True) | Q(fetch_attempted_at__lt=now - FETCH_RETRY_WAIT))
        .order_by("created_at").values_list("pk", flat=True)[:200]
    )


# ------------------------------------------------------------------ reads


def media_file_for_viewer(*, ctx: AccountContext, user, media_file_id: int) -> MediaFile | None:
    """A kept file the viewer may see: any of the account's for supervisors and
    auditors; for an agent, one of their own conversations' (or one they kept
    themselves). None otherwise, so the view answers 404 either way."""
    media = (
        MediaFile.objects.filter(official_account=ctx.account, pk=media_file_id, state=MediaFile.State.READY)
        .select_related("customer")
        .first()
    )
    if media is None or not media.file:
        return None
    if not ctx.is_agent:
        return media
    if ctx.agent is None:
        return None
    if media.created_by_id is not None and media.created_by_id == user.pk:
        return media
    if media.customer is not None and customer_open_to_agent(
        customer=media.customer, openid=media.customer.openid, account=ctx.account, agent=ctx.agent
    ):
        return media
    return None


def library_item_get(*, account_id: int, kinds: tuple[str, ...], ident: str) -> LibraryItem | None:
    if not ident:
        return None
    return LibraryItem.objects.filter(official_account_id=account_id, kind__in=kinds, ident=ident).first()


# A media quick reply's message type -> the library kind it names.
QUICK_REPLY_LIBRARY_KINDS: dict[str, str] = {
    OutboundMessage.MsgType.IMAGE: LibraryItem.Kind.IMAGE,
    OutboundMessage.MsgType.VOICE: LibraryItem.Kind.VOICE,
    OutboundMessage.MsgType.VIDEO: LibraryItem.Kind.VIDEO,
    OutboundMessage.MsgType.MPNEWSARTICLE: LibraryItem.Kind.ARTICLE,
}


def library_items_attach(*, account: OfficialAccount, replies: Iterable[QuickReply]) -> None:
    """Set `library_item` on each media reply (the LibraryItem it names, None when the
    library no longer holds it; None for text), in one query, for the picker and the
    management list to show its kind, title and thumbnail."""
    replies = list(replies)
    wanted = {(QUICK_REPLY_LIBRARY_KINDS[r.msgtype], r.library_ident) for r in replies if r.msgtype in QUICK_REPLY_LIBRARY_KINDS}
    found: dict[tuple[str, str], LibraryItem] = {}
    if wanted:
        rows = LibraryItem.objects.filter(
            official_account=account, kind__in={k for k, _ in wanted}, ident__in={i for _, i in wanted}
        )
        found = {(item.kind, item.ident): item for item in rows}
    for reply in replies:
        kind = QUICK_REPLY_LIBRARY_KINDS.get(reply.msgtype)
        reply.library_item = found.get((kind, reply.library_ident)) if kind else None  # type: ignore[attr-defined]


def library_search(*, account: OfficialAccount, kind: str = "", query: str = "", page: int | str = 1) -> Page:
    """The account's library, newest first, filtered by kind and words in the title,
    digest or id; one page of LIBRARY_PAGE_SIZE."""
    items: QuerySet[LibraryItem] = LibraryItem.objects.filter(official_account=account)
    if kind:
        items = items.filter(kind=kind)
    query = query.strip()
    if query:
        items = items.filter(Q(title__icontains=query) | Q(digest__icontains=query) | Q(ident=query))
    return Paginator(items.order_by("-updated_at", "title", "pk"), LIBRARY_PAGE_SIZE).get_page(page)


def library_synced_at(*, account: OfficialAccount) -> datetime | None:
    """When the library sync last succeeded (None: never)."""
    return (
        SyncState.objects.filter(official_account=account, job=SyncState.Job.LIBRARY)
        .values_list("last_success_at", flat=True)
        .first()
    )


def library_choices(*, account: OfficialAccount, kinds: tuple[str, ...], limit: int = 200) -> list[tuple[str, str]]:
    """(ident, title) of the newest library items of these kinds, for a select."""
    rows = LibraryItem.objects.filter(official_account=account, kind__in=kinds).order_by("-updated_at", "title")
    return [(item.ident, item.title or item.ident) for item in rows[:limit]]


# ------------------------------------------------------------------ library sync


@dataclass(frozen=True)
class LibrarySyncResult:
    counts: dict[str, int]
    removed: int

    def as_json(self) -> dict:
        return {"counts": self.counts, "removed": self.removed}


def _stamp(seconds: int) -> datetime | None:
    return datetime.fromtimestamp(seconds, tz=UTC) if seconds else None


def library_sync(*, account_id: int) -> LibrarySyncResult:
    """Copy the account's permanent materials (image, voice, video, news) and published
    articles into LibraryItem: every page WeChat lists (up to LIBRARY_SYNC_LIMIT per
    kind), then remove what WeChat no longer lists. Raises WeChatError; a failed run
    changes nothing."""
    with sync_state_recording(account_id=account_id, job=SyncState.Job.LIBRARY):
        return _library_sync(account_id)


def _library_sync(account_id: int) -> LibrarySyncResult:
    account = OfficialAccount.objects.get(pk=account_id)
    client = wechat_client_for(account)
    now = timezone.now()
    seen: list[LibraryItem] = []
    counts: dict[str, int] = {}
    for kind in ("image", "voice", "video", "news"):
        offset = 0
        while offset < LIBRARY_SYNC_LIMIT:
            page = client.batchget_material(kind, offset=offset, count=MAX_MATERIALS_PER_PAGE)
            for item in page.item:
                first = item.content.news_item[0] if item.content.news_item else None
                seen.append(LibraryItem(
                    official_account=account, kind=kind, ident=item.media_id,
                    title=(first.title if first else item.name)[:256],
                    digest=first.digest if first else "",
                    url=(first.url if first else item.url)[:1024],
                    thumb_media_id=first.thumb_media_id if first else "",
                    updated_at=_stamp(item.update_time), synced_at=now,
                ))
            offset += len(page.item)
            if not page.item or offset >= page.total_count:
                break
        counts[kind] = sum(1 for i in seen if i.kind == kind)
    offset = 0
    while offset < LIBRARY_SYNC_LIMIT:
        published = client.batchget_freepublish(offset=offset, count=MAX_MATERIALS_PER_PAGE, no_content=True)
        for entry in published.item:
            articles = [a for a in entry.content.news_item if not a.is_deleted]
            if not articles:
                continue
            first = articles[0]
            seen.append(LibraryItem(
                official_account=account, kind=LibraryItem.Kind.ARTICLE, ident=entry.article_id,
                title=first.title[:256], digest=first.digest, url=first.url[:1024],
                thumb_media_id=first.thumb_media_id, updated_at=_stamp(entry.update_time), synced_at=now,
            ))
        offset += len(published.item)
        if not published.item or offset >= published.total_count:
            break
    counts["article"] = sum(1 for i in seen if i.kind == LibraryItem.Kind.ARTICLE)
    with transaction.atomic():
        LibraryItem.objects.bulk_create(
            seen, update_conflicts=True, unique_fields=["official_account", "kind", "ident"],
            update_fields=["title", "digest", "url", "thumb_media_id", "updated_at", "synced_at"],
        )
        removed, _ = LibraryItem.objects.filter(official_account=account, synced_at__lt=now).delete()
    return LibrarySyncResult(counts=counts, removed=removed)

