"""The permanent chat archive and the messages people send from kfadmin."""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Agent, OfficialAccount
from sessions_app.models import Customer


def record_digest(worker: str, openid: str, opercode: int, text: str) -> bytes:
    """What identifies a record's content; with (time, seq) it is the archive's natural key."""
    payload = "\x1f".join((worker, openid, str(opercode), text)).encode()
    return hashlib.sha256(payload).digest()[:16]


class MessageRecord(models.Model):
    """One `getmsglist` record (or the same fact learned from a callback or our own send).

    WeChat records carry no id, so the key is (account, time, digest, seq): `seq` is the
    record's position among identical records of the same second, so two identical
    messages in one second are both kept, and re-syncing a window adds nothing.
    """

    class Source(models.TextChoices):
        SYNC = "sync", _("history sync")
        CALLBACK = "callback", _("callback")
        KFADMIN = "kfadmin", _("sent from kfadmin")

    class OperCode(models.IntegerChoices):
        QUEUED = 1000, _("session queued")
        ACCEPTED = 1001, _("session accepted")
        CREATED = 1002, _("session started by an agent")
        TRANSFERRED = 1003, _("session transferred")
        CLOSED = 1004, _("session closed")
        GRABBED = 1005, _("session grabbed")
        RECEIVED_BY_OA = 2001, _("customer message")
        AGENT_SENT = 2002, _("agent message")
        AGENT_RECEIVED = 2003, _("customer message")

        # The groups the code asks about (not choices: `enum.nonmember`).
        # A message the customer wrote: to the official account, or to a kf account.
        CUSTOMER = enum.nonmember(frozenset({2001, 2003}))
        # A message an agent sent.
        AGENT = enum.nonmember(frozenset({2002}))
        # The session events the history filter offers.
        SESSION_EVENTS = enum.nonmember(frozenset({1000, 1001, 1002, 1003, 1004, 1005}))
        # A session starting: accepted from the queue (1001), created by an agent or
        # the API (1002), grabbed (1005). WeChat pushes `kf_create_session` for each,
        # so a callback cannot tell which one its record will be.
        SESSION_STARTS = enum.nonmember(frozenset({1001, 1002, 1005}))

        @staticmethod
        def is_session_event(code: int) -> bool:
            """Every 1xxx code is a session event, also one WeChat adds later."""
            return 1000 <= code < 2000

    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="records")
    time = models.DateTimeField()
    worker = models.CharField(max_length=64, blank=True)
    openid = models.CharField(max_length=64)
    opercode = models.IntegerField()
    text = models.TextField(blank=True)
    digest = models.BinaryField(max_length=16)
    seq = models.PositiveSmallIntegerField(default=0)
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.SYNC)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["official_account", "time", "digest", "seq"], name="record_natural_key"
            ),
        ]
        indexes = [
            models.Index(fields=["official_account", "time", "id"], name="record_account_time"),
            models.Index(fields=["official_account", "openid", "time", "id"], name="record_openid_time"),
            models.Index(fields=["official_account", "worker", "time", "id"], name="record_worker_time"),
        ]

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.openid} {self.opercode}"

    @property
    def is_customer_message(self) -> bool:
        return self.opercode in self.OperCode.CUSTOMER

    @property
    def is_agent_message(self) -> bool:
        return self.opercode in self.OperCode.AGENT

    @property
    def is_session_event(self) -> bool:
        return self.OperCode.is_session_event(self.opercode)

    @property
    def opercode_label(self) -> str:
        """What the record is, in words (e.g. "session accepted")."""
        try:
            return str(self.OperCode(self.opercode).label)
        except ValueError:
            return _("record %(code)s") % {"code": self.opercode}


# A message still queued or sending after this long is stuck: no worker took it, or a
# worker died while calling WeChat (see messaging.services.outbound_deliver).
SEND_STALE_AFTER = timedelta(minutes=10)


def archive_text(msgtype: str, payload: dict[str, Any]) -> str:
    """What WeChat's chat history shows for a sent message: the text, or a tag."""
    if msgtype == OutboundMessage.MsgType.TEXT:
        return str(payload.get("content", ""))
    return f"[{msgtype}]"


class OutboundMessage(models.Model):
    """A message a person sent (or tried to send) from kfadmin; the page polls its status."""

    class MsgType(models.TextChoices):
        TEXT = "text", _("Text")
        IMAGE = "image", _("Image")
        VOICE = "voice", _("Voice")
        VIDEO = "video", _("Video")
        MUSIC = "music", _("Music")
        NEWS = "news", _("News (link)")
        MPNEWS = "mpnews", _("Article (media id)")
        MPNEWSARTICLE = "mpnewsarticle", _("Published article")
        MSGMENU = "msgmenu", _("Menu")
        WXCARD = "wxcard", _("Card")
        MINIPROGRAMPAGE = "miniprogrampage", _("Mini-program page")

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        SENDING = "sending", _("sending")
        SENT = "sent", _("sent")
        FAILED = "failed", _("failed")
        # WeChat may or may not have delivered it (a timeout after sending, a dropped
        # connection, a worker that died mid-call). Never sent again automatically;
        # the history sync settles it as sent or failed (not delivered).
        UNKNOWN = "unknown", _("outcome unknown")

    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="outbound")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="outbound")
    agent = models.ForeignKey(Agent, on_delete=models.SET_NULL, null=True, blank=True, related_name="outbound")
    msgtype = models.CharField(max_length=16, choices=MsgType.choices)
    payload = models.JSONField(help_text="The wire object for this msgtype, e.g. {'content': '…'}.")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    errcode = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True, help_text="What went wrong, in plain words.")
    attempts = models.PositiveSmallIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    # When a worker should have taken it (on creation; after a retry's backoff): a
    # queued message well past this was never delivered to a worker, and the outbox
    # sweep enqueues it again.
    due_at = models.DateTimeField(default=timezone.now)
    # When the last attempt to call WeChat began: where WeChat's copy of the message
    # is looked for when the outcome is unknown.
    attempted_at = models.DateTimeField(null=True, blank=True)
    # WeChat's copy of the message in the archive, once known.
    record = models.OneToOneField(
        MessageRecord, on_delete=models.SET_NULL, null=True, blank=True, related_name="outbound"
    )
    # The failed message this one sends again (the person's "Send again").
    resend_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="resends"
    )
    # A file kfadmin keeps and uploads to WeChat when the message is delivered: the
    # image, voice or video (`media_id`), and the thumbnail (`thumb_media_id`). The
    # payload gets the media_id of the upload each delivery used.
    media = models.ForeignKey(
        "MediaFile", on_delete=models.PROTECT, null=True, blank=True, related_name="sends"
    )
    thumb = models.ForeignKey(
        "MediaFile", on_delete=models.PROTECT, null=True, blank=True, related_name="thumb_sends"
    )

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["customer", "created_at"], name="outbound_customer_created"),
            models.Index(fields=["official_account", "status"], name="outbound_account_status"),
            models.Index(fields=["status", "due_at"], name="outbound_status_due"),
        ]

    def __str__(self) -> str:
        return f"{self.msgtype} to {self.customer} ({self.status})"

    @property
    def can_send_again(self) -> bool:
        """A failed message (including one WeChat's history shows was not delivered)
        may be sent again as a new message, once."""
        return self.status == self.Status.FAILED

    @property
    def awaits_worker(self) -> bool:
        """Queued while the task queue could not be reached: the outbox sweep sends it
        when the workers are back (its `error` says so)."""
        return self.status == self.Status.QUEUED and self.attempts == 0 and bool(self.error)


class CallbackNonce(models.Model):
    """A (timestamp, nonce) that a push to this account has used.

    In plaintext mode WeChat's signature covers only token, timestamp and nonce, not
    the body, so a second push under the same pair is a replay, whatever it carries.
    Rows whose timestamp is older than the clock-skew window are pruned: such a
    timestamp is refused before this table is asked.
    """

    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="+")
    timestamp = models.BigIntegerField()
    nonce = models.CharField(max_length=32)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["official_account", "timestamp", "nonce"], name="callback_nonce_once"),
        ]
        indexes = [models.Index(fields=["timestamp"], name="callback_nonce_timestamp")]

    def __str__(self) -> str:
        return f"{self.timestamp} {self.nonce}"


class ExportJob(models.Model):
    """An export of the archive prepared in the background: too many records to
    stream from one request (a slow client would hold a web worker past its timeout).

    The worker writes the file under EXPORT_ROOT, counting rows as it goes (the page
    polls the progress); the file can be downloaded until `expires_at`, then the
    cleanup task deletes it and the row stays as the record of what was taken out."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("waiting for a worker")
        RUNNING = "running", _("being prepared")
        DONE = "done", _("ready")
        FAILED = "failed", _("failed")
        EXPIRED = "expired", _("removed")

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        JSONL = "jsonl", "JSON Lines"

    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="export_jobs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    export_format = models.CharField(max_length=8, choices=Format.choices)
    # The RecordFilter, as the audit entry has it (agent as its kf account, times ISO).
    filters = models.JSONField(default=dict)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    rows_total = models.BigIntegerField(null=True, blank=True, help_text="Matching records when the job started.")
    rows_written = models.BigIntegerField(default=0)
    size_bytes = models.BigIntegerField(default=0)
    # Relative to EXPORT_ROOT; random, so a name cannot be guessed.
    file_name = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True, help_text="Why it failed, as an English sentence (translated when shown).")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    # Written with each progress update: a running job whose heartbeat stopped lost its worker.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["official_account", "created_at"], name="export_account_created"),
            models.Index(fields=["status", "expires_at"], name="export_status_expires"),
        ]

    def __str__(self) -> str:
        return f"{self.export_format} export {self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def percent(self) -> int | None:
        """How far the file is written, 0-100; None before the total is known."""
        if self.status == self.Status.DONE:
            return 100
        if not self.rows_total:
            return None
        return min(99, int(self.rows_written * 100 / self.rows_total))

    FILTER_LABELS = {
        "q": _("Text"), "agent": _("Agent"), "openid": _("Customer (openid)"), "kinds": _("Kind"),
        "since": _("From"), "until": _("To"),
    }

    @property
    def filter_items(self) -> list[tuple[str, str]]:
        """(label, value) of each filter the export was asked with, for its list."""
        items = []
        for name, value in self.filters.items():
            shown = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
            items.append((str(self.FILTER_LABELS.get(name, name)), shown))
        return items

    def download_name(self, zone: Any) -> str:
        stamp = self.created_at.astimezone(zone).strftime("%Y%m%d-%H%M")
        return f"kfadmin-history-{stamp}.{self.export_format}"
# A quick reply's text is sent as it is, so it may be as long as a text message
# WeChat accepts (messaging.forms.TEXT_MAX_BYTES, 2048 bytes of UTF-8; WeChat answers
# longer ones with 45002). WeChat's own console caps replies at 100 (shared) and 500
# (personal) characters, which cuts a useful answer in two; the only limit that
# matters is the send's.
QUICK_REPLY_TITLE_MAX = 64


class QuickReply(models.Model):
    """A prepared answer an agent inserts into the composer with `/`.

    Shared replies (no `owner`) belong to the official account and are managed by its
    supervisors; personal ones belong to one dashboard user. A reply is a message:
    `msgtype` and `payload` hold the wire object as an `OutboundMessage` does, so a
    reply holding an image or a published article (a library item or an uploaded
    file, by its media_id or article_id) needs no new table, only a composer that
    sends it. A text reply holds `{"content": "…"}`; a media reply names a library
    item: `{"media_id": …}` (image, voice, video) or `{"article_id": …}` (a published
    article, mpnewsarticle).
    """

    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="quick_replies")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="quick_replies",
        help_text="The one person this reply belongs to; empty for a reply shared by the account.",
    )
    title = models.CharField(max_length=QUICK_REPLY_TITLE_MAX)
    msgtype = models.CharField(max_length=16, choices=OutboundMessage.MsgType.choices, default=OutboundMessage.MsgType.TEXT)
    payload = models.JSONField(default=dict)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["title", "id"]
        indexes = [models.Index(fields=["official_account", "owner", "title"], name="quickreply_account_owner")]

    def __str__(self) -> str:
        return self.title

    @property
    def is_shared(self) -> bool:
        return self.owner_id is None

    @property
    def text(self) -> str:
        """What the reply puts in the composer (a text reply's content)."""
        return str(self.payload.get("content", "")) if self.msgtype == OutboundMessage.MsgType.TEXT else ""

    @property
    def library_ident(self) -> str:
        """The library item a media reply sends (its media_id or article_id); "" for text."""
        key = "article_id" if self.msgtype == OutboundMessage.MsgType.MPNEWSARTICLE else "media_id"
        return "" if self.msgtype == OutboundMessage.MsgType.TEXT else str(self.payload.get(key, ""))


class QuickReplyUse(models.Model):
    """How often one person picked one reply: the picker lists their common ones first."""

    reply = models.ForeignKey(QuickReply, on_delete=models.CASCADE, related_name="uses")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    count = models.PositiveIntegerField(default=0)
    last_used_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["reply", "user"], name="quickreplyuse_once_per_user")]
        indexes = [models.Index(fields=["user", "-count"], name="quickreplyuse_user_count")]

    def __str__(self) -> str:
        return f"{self.reply_id} · {self.user_id} · {self.count}"
class ConversationSeen(models.Model):
    """When a person last looked at a customer's conversation: the inbox counts the
    customer's messages after it as unread for them."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="+")
    openid = models.CharField(max_length=64)
    seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "official_account", "openid"], name="conversation_seen_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.openid} {self.seen_at:%Y-%m-%d %H:%M:%S}"


def media_upload_to(instance: MediaFile, filename: str) -> str:
    """Where a kept file goes under MEDIA_ROOT: by account and month, under a name
    kfadmin chose (the extension of the sniffed format, never the browser's name)."""
    now = timezone.now()
    return f"messaging/{instance.official_account_id}/{now:%Y/%m}/{filename}"


class MediaFile(models.Model):
    """A picture, recording or film kfadmin keeps: one an agent sends (uploaded to
    WeChat as temporary media when a message goes out, again once the 3 days are up),
    or one a customer sent (fetched from WeChat before it expires).

    `content_type` comes from sniffing the bytes, never from the browser or WeChat."""

    class Kind(models.TextChoices):
        IMAGE = "image", _("Image")
        VOICE = "voice", _("Voice")
        VIDEO = "video", _("Video")
        THUMB = "thumb", _("Thumbnail")

    class Direction(models.TextChoices):
        SENT = "sent", _("sent by an agent")
        RECEIVED = "received", _("sent by the customer")

    class State(models.TextChoices):
        READY = "ready", _("kept")
        FETCHING = "fetching", _("being fetched")
        FAILED = "failed", _("could not be fetched")

    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="media_files")
    # The conversation it belongs to (None for a file kept for later, e.g. a quick reply).
    customer = models.ForeignKey(Customer, on_delete=models.SET_NULL, null=True, blank=True, related_name="media_files")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    direction = models.CharField(max_length=8, choices=Direction.choices, default=Direction.SENT)
    state = models.CharField(max_length=8, choices=State.choices, default=State.READY)
    file = models.FileField(upload_to=media_upload_to, max_length=255, blank=True)
    name = models.CharField(max_length=255, blank=True, help_text="The name the file had, for people.")
    content_type = models.CharField(max_length=64, blank=True)
    size = models.PositiveIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    # WeChat's temporary media id and when it stops working (3 days after upload).
    media_id = models.CharField(max_length=256, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    uploads = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    # A customer's media being fetched: set while a worker downloads it (the claim, so
    # two runs never both download), and when the last attempt began (the sweep leaves
    # alone a fetch waiting between its retries).
    fetch_started_at = models.DateTimeField(null=True, blank=True)
    fetch_attempted_at = models.DateTimeField(null=True, blank=True)
    # A customer's media: the record it arrived with.
    record = models.OneToOneField(
        MessageRecord, on_delete=models.SET_NULL, null=True, blank=True, related_name="media_file"
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            models.Index(fields=["official_account", "media_id"], name="media_account_media_id"),
            models.Index(fields=["state", "created_at"], name="media_state_created"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name or self.pk}"

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")

    @property
    def is_audio(self) -> bool:
        return self.content_type.startswith("audio/")

    @property
    def is_video(self) -> bool:
        return self.content_type.startswith("video/")

    def upload_live(self, now: datetime | None = None) -> bool:
        """Whether WeChat still holds the last upload (with a margin, so a send that
        starts now does not race the expiry)."""
        now = now or timezone.now()
        return bool(self.media_id) and self.expires_at is not None and self.expires_at - MEDIA_EXPIRY_MARGIN > now


# A temporary media is uploaded again this long before WeChat forgets it.
MEDIA_EXPIRY_MARGIN = timedelta(minutes=10)


class LibraryItem(models.Model):
    """kfadmin's copy of one of the account's permanent materials (image, voice,
    video, news) or published articles, refreshed by the library sync; the composer
    picks from it without asking WeChat."""

    class Kind(models.TextChoices):
        IMAGE = "image", _("Image")
        VOICE = "voice", _("Voice")
        VIDEO = "video", _("Video")
        NEWS = "news", _("News material")
        ARTICLE = "article", _("Published article")

    official_account = models.ForeignKey(OfficialAccount, on_delete=models.CASCADE, related_name="library")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # media_id (materials) or article_id (published articles).
    ident = models.CharField(max_length=256)
    title = models.CharField(max_length=256, blank=True)
    digest = models.TextField(blank=True)
    url = models.CharField(max_length=1024, blank=True)
    thumb_media_id = models.CharField(max_length=256, blank=True)
    updated_at = models.DateTimeField(null=True, blank=True, help_text="When WeChat says it last changed.")
    synced_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["official_account", "kind", "ident"], name="library_item_once"),
        ]
        indexes = [models.Index(fields=["official_account", "kind", "updated_at"], name="library_account_kind")]
        ordering = ["-updated_at", "title"]

    def __str__(self) -> str:
        return f"{self.kind} {self.title or self.ident}"
