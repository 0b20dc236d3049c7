"""The composer (one form per message type) and the history filters.

Every composer form turns its fields into the wire payload WeChat expects under the
message type's key (wechat-kf-api.md §6.2); the client validates the same shape
again before any HTTP call, so a bad payload never reaches WeChat.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db.models import QuerySet
from django.template.defaultfilters import filesizeformat
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from accounts.forms import AgentChoiceField, UncutInputsMixin, bound_agents
from accounts.models import Agent, OfficialAccount
from accounts.sentences import sentence_translate
from kfadmin.forms import DayField
from kfadmin.wechat import MEDIA_RULES
from messaging.media import (
    QUICK_REPLY_LIBRARY_KINDS,
    MediaUpload,
    library_choices,
    library_item_get,
    media_check,
)
from messaging.models import QUICK_REPLY_TITLE_MAX, LibraryItem, OutboundMessage
from messaging.selectors import RecordFilter
from sessions_app.selectors import customer_known, customer_openids_named

if TYPE_CHECKING:
    from django.utils.functional import _StrOrPromise

MsgType = OutboundMessage.MsgType

# WeChat rejects longer texts with 45002; 2048 bytes is the limit SDKs document.
TEXT_MAX_BYTES = 2048
MEDIA_ID_MAX = 128
TITLE_MAX = 64
DESCRIPTION_MAX = 512
MENU_TEXT_MAX = 256
MENU_OPTIONS_MAX = 10


def text_for_wechat(text: str, *, blank: _StrOrPromise, too_long: _StrOrPromise) -> str:
    """A text WeChat will take: not blank, at most TEXT_MAX_BYTES of UTF-8 (45002).
    `too_long` may name the %(size)s and %(limit)s in bytes."""
    if not text.strip():
        raise ValidationError(blank)
    size = len(text.encode("utf-8"))
    if size > TEXT_MAX_BYTES:
        raise ValidationError(too_long, params={"size": size, "limit": TEXT_MAX_BYTES})
    return text


class HttpURLField(forms.URLField):
    """A URL WeChat can open: http or https, scheme required."""

    default_validators = [
        RegexValidator(r"^https?://", _("Enter a full address starting with http:// or https://.")),
    ]

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("assume_scheme", "https")
        kwargs.setdefault("max_length", 1024)
        super().__init__(**kwargs)
        self.widget.attrs.setdefault("inputmode", "url")
        self.widget.attrs.setdefault("placeholder", "https://")


def _title(required: bool = False):
    return forms.CharField(label=_("Title"), max_length=TITLE_MAX, required=required)


def _description():
    return forms.CharField(
        label=_("Description"), max_length=DESCRIPTION_MAX, required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class MediaInputField(forms.FileField):
    """A file to send as WeChat media of `kind`: picked, dropped or pasted in the
    composer (static/js/media-input.js). Checked from its bytes against WeChat's
    limits for the kind; cleans to a MediaUpload."""

    def __init__(self, *, kind: str, **kwargs: Any):
        self.kind = kind
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)
        accept = {"image": "image/png,image/jpeg,image/gif", "voice": "audio/amr,audio/mpeg,.amr,.mp3",
                  "video": "video/mp4", "thumb": "image/jpeg"}[kind]
        self.widget.attrs.update({"accept": accept, "data-media-input": kind})

    def clean(self, data: Any, initial: Any = None) -> MediaUpload | None:
        upload = super().clean(data, initial)
        if not upload:
            return None
        rule = MEDIA_RULES[self.kind]
        if upload.size > rule.max_bytes:
            # Refused before reading a file that is too big anyway.
            raise ValidationError(
                _("The file is %(size)s; WeChat accepts at most %(limit)s here."),
                params={"size": filesizeformat(upload.size), "limit": rule.shown_size},
            )
        content = upload.read()
        problem = media_check(kind=self.kind, content=content)
        if problem is not None:
            raise ValidationError(sentence_translate(problem))
        return MediaUpload(kind=self.kind, content=content, name=upload.name or "")


class PayloadForm(UncutInputsMixin, forms.Form):
    """Base of the composer forms: who sends, and the payload of one message type."""

    msgtype: str = ""
    label: str | Promise = ""
    as_agent = AgentChoiceField(
        label=_("Send as"), empty_label=None, scope="bound",
        help_text=_("The customer sees this agent's name and avatar."),
    )

    def __init__(
        self,
        *args: Any,
        account: OfficialAccount,
        only: Agent | None = None,
        preferred: tuple[Agent | None, ...] = (),
        **kwargs: Any,
    ):
        """`only`: the one agent this person may send as (the agent role).
        `preferred`: whom to propose, first match wins (the agent serving the session,
        then the person's own agent); with none of them listed and more than one
        agent to choose from, nobody is proposed and the person has to pick."""
        super().__init__(*args, **kwargs)
        # WeChat sends only as an agent bound to a WeChat user.
        field = self.fields["as_agent"]
        assert isinstance(field, forms.ModelChoiceField)
        agents = field.queryset = bound_agents(account, only=only)
        field.error_messages["invalid_choice"] = _(
            "Choose one of the listed agents; only agents bound to a WeChat user can send."
        )
        if not self.is_bound and not self.initial.get("as_agent"):
            self._propose_agent(field, agents, preferred)
        # Keep the agent field first whatever the subclass declares.
        self.order_fields(["as_agent"])

    def _propose_agent(
        self, field: forms.ModelChoiceField, agents: QuerySet[Agent], preferred: tuple[Agent | None, ...]
    ) -> None:
        wanted = [agent.pk for agent in preferred if agent is not None]
        listed = set(agents.filter(pk__in=wanted).values_list("pk", flat=True)) if wanted else set()
        proposed = next((pk for pk in wanted if pk in listed), None)
        if proposed is None:
            first_two = list(agents.values_list("pk", flat=True)[:2])
            proposed = first_two[0] if len(first_two) == 1 else None
        if proposed is None:
            field.empty_label = _("Choose an agent")
        else:
            self.initial["as_agent"] = proposed

    def payload(self) -> dict[str, Any]:
        """The wire object for this message type (call after is_valid())."""
        data = self.cleaned_data
        return {name: data.get(name) or "" for name in self.payload_fields}

    payload_fields: tuple[str, ...] = ()

    def attachments(self) -> dict[str, MediaUpload | None]:
        """The files to send with the message (`media`, `thumb`), for outbound_queue."""
        data = self.cleaned_data
        return {"media": data.get("file"), "thumb": data.get("thumb_file")}

    def payload_field_list(self):
        return [self[name] for name in self.fields if name != "as_agent"]


class TextForm(PayloadForm):
    msgtype = MsgType.TEXT
    label = _("Text")
    content = forms.CharField(
        label=_("Message"), widget=forms.Textarea(attrs={"rows": 4}), strip=False,
        help_text=_('Links are allowed: <a href="https://…">text</a>.'),
    )
    payload_fields = ("content",)

    def clean_content(self) -> str:
        return text_for_wechat(
            self.cleaned_data["content"],
            blank=_("Write a message first."),
            too_long=_("The message is %(size)s bytes; WeChat accepts at most %(limit)s bytes (about 680 Chinese characters). Shorten it."),
        )


class LibraryChoiceField(forms.ChoiceField):
    """A library item by its id. The select offers the newest items (`library_choices`),
    but the library keeps many more: a value it does not list is accepted when
    `lookup` finds it in the account's library (the library page links any item)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lookup: Callable[[str], LibraryItem | None] = lambda value: None

    def valid_value(self, value: Any) -> bool:
        return super().valid_value(value) or (bool(value) and self.lookup(str(value)) is not None)


def _library_offer(form: forms.Form, name: str, label: Callable[[LibraryItem], tuple[str, Any]]) -> None:
    """Offer the item the form was given (posted, or initial) in its select although it
    is older than those listed, so it shows selected."""
    field = cast(LibraryChoiceField, form.fields[name])
    wanted = form.data.get(form.add_prefix(name)) if form.is_bound else form.initial.get(name, field.initial)
    if not wanted or not isinstance(wanted, str) or forms.ChoiceField.valid_value(field, wanted):
        return
    item = field.lookup(wanted)
    if item is not None:
        choices = list(cast(list, field.choices))
        field.choices = [*choices[:1], label(item), *choices[1:]]


def _library_field_lookup(field: forms.Field, account: OfficialAccount, kinds: tuple[str, ...]) -> None:
    cast(LibraryChoiceField, field).lookup = lambda ident: library_item_get(account_id=account.pk, kinds=kinds, ident=ident)


class MediaForm(PayloadForm):
    """A message whose `media_id` is a file the person gives (uploaded to WeChat when
    it is sent) or a permanent material picked from the library."""

    media_kind = "image"
    library_kinds: tuple[str, ...] = ()

    def __init__(self, *args: Any, account: OfficialAccount, **kwargs: Any):
        super().__init__(*args, account=account, **kwargs)
        choices = library_choices(account=account, kinds=self.library_kinds) if self.library_kinds else []
        if choices:
            field = self.fields["library"]
            cast(forms.ChoiceField, field).choices = [("", _("— none: send the file above —")), *choices]
            _library_field_lookup(field, account, self.library_kinds)
            _library_offer(self, "library", lambda item: (item.ident, item.title or item.ident))
        else:
            del self.fields["library"]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        picked = data.get("library")
        if "file" in self.errors:
            return data
        if data.get("file") and picked:
            raise ValidationError(_("Send either a file or a library item, not both."))
        if not data.get("file") and not picked:
            raise ValidationError(_("Choose a file (or drop or paste one here), or pick one from the library."))
        data["media_id"] = picked or ""
        return data


def _library_field() -> forms.ChoiceField:
    return LibraryChoiceField(label=_("Or from the library"), required=False, choices=())


class ImageForm(MediaForm):
    msgtype = MsgType.IMAGE
    label = _("Image")
    library_kinds = (LibraryItem.Kind.IMAGE,)
    file = MediaInputField(kind="image", label=_("Picture"), help_text=_("PNG, JPEG or GIF, at most 2 MB. Pick, drop or paste it."))
    library = _library_field()
    payload_fields = ("media_id",)


class VoiceForm(MediaForm):
    msgtype = MsgType.VOICE
    label = _("Voice")
    library_kinds = (LibraryItem.Kind.VOICE,)
    file = MediaInputField(kind="voice", label=_("Recording"), help_text=_("AMR or MP3, at most 2 MB and 60 seconds."))
    library = _library_field()
    payload_fields = ("media_id",)


class VideoForm(MediaForm):
    msgtype = MsgType.VIDEO
    label = _("Video")
    library_kinds = (LibraryItem.Kind.VIDEO,)
    file = MediaInputField(kind="video", label=_("Video file"), help_text=_("MP4, at most 10 MB."))
    library = _library_field()
    thumb_file = MediaInputField(kind="thumb", label=_("Thumbnail"), help_text=_("JPG, at most 64 KB."))
    title = _title()
    description = _description()
    payload_fields = ("media_id", "title", "description")

    def payload(self) -> dict[str, Any]:
        return {**super().payload(), "thumb_media_id": ""}


class MusicForm(PayloadForm):
    msgtype = MsgType.MUSIC
    label = _("Music")
    title = _title()
    description = _description()
    musicurl = HttpURLField(label=_("Music URL"))
    hqmusicurl = HttpURLField(label=_("High-quality music URL"), required=False, help_text=_("Played on Wi-Fi when given."))
    thumb_file = MediaInputField(kind="thumb", required=True, label=_("Thumbnail"), help_text=_("JPG, at most 64 KB."))
    payload_fields = ("title", "description", "musicurl", "hqmusicurl")

    def payload(self) -> dict[str, Any]:
        return {**super().payload(), "thumb_media_id": ""}


class NewsForm(PayloadForm):
    """A link card. WeChat accepts exactly one article per news message (45008)."""

    msgtype = MsgType.NEWS
    label = _("News (link)")
    title = _title(required=True)
    description = _description()
    url = HttpURLField(label=_("Link"))
    picurl = HttpURLField(label=_("Picture URL"), required=False, help_text=_("JPG or PNG; 640×320 looks best."))

    def payload(self) -> dict[str, Any]:
        data = self.cleaned_data
        article = {name: data.get(name) or "" for name in ("title", "description", "url", "picurl")}
        return {"articles": [article]}


class LibraryPickForm(PayloadForm):
    """A message that names one of the account's library items by its id."""

    library_kinds: tuple[str, ...] = ()
    id_field = "media_id"

    def __init__(self, *args: Any, account: OfficialAccount, **kwargs: Any):
        super().__init__(*args, account=account, **kwargs)
        field = cast(forms.ChoiceField, self.fields[self.id_field])
        field.choices = [("", _("Choose one")), *library_choices(account=account, kinds=self.library_kinds)]
        _library_field_lookup(field, account, self.library_kinds)
        _library_offer(self, self.id_field, lambda item: (item.ident, item.title or item.ident))
        if len(field.choices) == 1:
            field.help_text = _("The library is empty. It is copied from WeChat every few minutes; a supervisor can sync it now on the Sync page.")


class MpnewsForm(LibraryPickForm):
    msgtype = MsgType.MPNEWS
    label = _("Article (media id)")
    library_kinds = (LibraryItem.Kind.NEWS,)
    media_id = LibraryChoiceField(label=_("News material"), help_text=_("For published articles use “Published article”."))
    payload_fields = ("media_id",)


class MpnewsArticleForm(LibraryPickForm):
    msgtype = MsgType.MPNEWSARTICLE
    label = _("Published article")
    library_kinds = (LibraryItem.Kind.ARTICLE,)
    id_field = "article_id"
    article_id = LibraryChoiceField(label=_("Article"), help_text=_("An article the account has published."))
    payload_fields = ("article_id",)


class CardForm(PayloadForm):
    msgtype = MsgType.WXCARD
    label = _("Card")
    card_id = forms.CharField(label=_("Card id"), max_length=MEDIA_ID_MAX, help_text=_("Only cards without custom or imported codes can be sent."))
    payload_fields = ("card_id",)


class MiniProgramForm(PayloadForm):
    msgtype = MsgType.MINIPROGRAMPAGE
    label = _("Mini-program page")
    title = _title(required=True)
    appid = forms.CharField(
        label=_("Mini-program AppID"), max_length=32,
        validators=[RegexValidator(r"^wx[0-9a-zA-Z]{16}$", _("A mini-program AppID looks like wx followed by 16 letters or digits."))],
        help_text=_("The mini program must be linked to this official account."),
    )
    pagepath = forms.CharField(label=_("Page path"), max_length=256, help_text=_("As in app.json, e.g. pages/index/index?id=1"))
    thumb_file = MediaInputField(kind="image", required=True, label=_("Card picture"), help_text=_("PNG, JPEG or GIF, at most 2 MB; 520×416 looks best."))
    payload_fields = ("title", "appid", "pagepath")

    def payload(self) -> dict[str, Any]:
        return {**super().payload(), "thumb_media_id": ""}


class MenuOptionForm(UncutInputsMixin, forms.Form):
    id = forms.CharField(label=_("Option id"), max_length=64, help_text=_("Comes back with the customer's tap."))
    content = forms.CharField(label=_("Option text"), max_length=MENU_TEXT_MAX)


class MenuForm(PayloadForm):
    """A message with tappable options. Options are rows `opt-<i>-id`/`opt-<i>-content`
    with `opt_count` rows; the add and remove buttons post `menu_action`, and the view
    re-renders the form with the rows changed (`edited()`) instead of sending."""

    msgtype = MsgType.MSGMENU
    label = _("Menu")
    head_content = forms.CharField(label=_("Text above the options"), max_length=MENU_TEXT_MAX, required=False)
    tail_content = forms.CharField(label=_("Text below the options"), max_length=MENU_TEXT_MAX, required=False)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self.is_bound:
            self.options = [MenuOptionForm(self.data, prefix=f"opt-{i}") for i in range(self.row_count)]
        else:
            rows = self.initial.get("rows") or [self._default_row(i) for i in range(2)]
            self.options = [MenuOptionForm(prefix=f"opt-{i}", initial=row) for i, row in enumerate(rows)]

    @staticmethod
    def _default_row(index: int) -> dict[str, str]:
        return {"id": str(101 + index), "content": ""}

    @property
    def row_count(self) -> int:
        if not self.is_bound:
            return len(self.options)
        try:
            count = int(self.data.get("opt_count", 2))
        except (TypeError, ValueError):
            count = 2
        return max(1, min(MENU_OPTIONS_MAX, count))

    @property
    def can_add(self) -> bool:
        return self.row_count < MENU_OPTIONS_MAX

    def is_valid(self) -> bool:
        valid = super().is_valid()
        return all([option.is_valid() for option in self.options]) and valid

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        ids = [self.data.get(f"opt-{i}-id", "").strip() for i in range(self.row_count)]
        duplicates = sorted({i for i in ids if i and ids.count(i) > 1})
        if duplicates:
            raise ValidationError(
                _("Each option needs its own id; repeated: %(ids)s."), params={"ids": ", ".join(duplicates)}
            )
        return data

    def payload(self) -> dict[str, Any]:
        return {
            "head_content": self.cleaned_data.get("head_content") or "",
            "list": [{"id": o.cleaned_data["id"], "content": o.cleaned_data["content"]} for o in self.options],
            "tail_content": self.cleaned_data.get("tail_content") or "",
        }

    def payload_field_list(self):
        return [self["head_content"], self["tail_content"]]

    def edited_initial(self, action: str) -> dict[str, Any]:
        """Initial data for a fresh form with an option row added ("add") or removed
        ("remove-<i>"), keeping what was typed."""
        rows = [
            {"id": self.data.get(f"opt-{i}-id", ""), "content": self.data.get(f"opt-{i}-content", "")}
            for i in range(self.row_count)
        ]
        if action == "add" and len(rows) < MENU_OPTIONS_MAX:
            used = {row["id"] for row in rows}
            new_id = next(str(n) for n in range(101, 101 + 2 * MENU_OPTIONS_MAX) if str(n) not in used)
            rows.append({"id": new_id, "content": ""})
        elif (match := re.fullmatch(r"remove-(\d+)", action)) and len(rows) > 1:
            index = int(match.group(1))
            if 0 <= index < len(rows):
                rows.pop(index)
        initial: dict[str, Any] = {key: self.data.get(key, "") for key in ("as_agent", "head_content", "tail_content")}
        initial["rows"] = rows
        return initial


COMPOSER_FORMS: dict[str, type[PayloadForm]] = {
    form.msgtype: form
    for form in (
        TextForm, ImageForm, VoiceForm, VideoForm, MusicForm, NewsForm, MpnewsForm,
        MpnewsArticleForm, MenuForm, CardForm, MiniProgramForm,
    )
}


def composer_form_class(msgtype: str | None) -> type[PayloadForm]:
    return COMPOSER_FORMS.get(msgtype or "", TextForm)


class TypingForm(forms.Form):
    command = forms.ChoiceField(choices=[("Typing", _("Show typing")), ("CancelTyping", _("Stop typing"))], initial="Typing")


# ---------------------------------------------------------------- history


class HistoryFilterForm(UncutInputsMixin, forms.Form):
    """Filters of the history search; dates are whole days in the account's time zone."""

    KIND_CHOICES = [
        ("customer", _("Customer messages")),
        ("agent", _("Agent messages")),
        ("session", _("Session events")),
    ]

    q = forms.CharField(label=_("Text"), required=False, max_length=200, strip=True,
                        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("Words in the message, e.g. 退款")}))
    agent = AgentChoiceField(required=False, label=_("Agent"), empty_label=_("Any agent"), scope="any")
    openid = forms.CharField(label=_("Customer (openid or remark name)"), required=False, max_length=64)
    kinds = forms.MultipleChoiceField(choices=KIND_CHOICES, required=False, widget=forms.CheckboxSelectMultiple, label=_("Kind"))
    since = DayField(label=_("From"), required=False)
    until = DayField(label=_("To"), required=False)
    cursor = forms.CharField(required=False, widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args: Any, account: OfficialAccount, lock_agent: Agent | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.account = account
        self.lock_agent = lock_agent
        agents = Agent.objects.filter(official_account=account).order_by("kf_account")
        if lock_agent is not None:
            agents = agents.filter(pk=lock_agent.pk)
            del self.fields["agent"]
        else:
            field = self.fields["agent"]
            assert isinstance(field, forms.ModelChoiceField)
            field.queryset = agents

    def clean_openid(self) -> str:
        """An openid, or the remark name of one customer (then their openid). An
        openid the account knows wins over a remark name spelled the same."""
        value = (self.cleaned_data.get("openid") or "").strip()
        if not value:
            return ""
        if customer_known(account=self.account, openid=value):
            return value
        named = customer_openids_named(account=self.account, name=value)
        if len(named) > 1:
            raise ValidationError(_("More than one customer is named “%(name)s”; search by openid."), params={"name": value})
        return named[0] if named else value

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            self.add_error("until", _("The end date is before the start date."))
        return data

    def _start_of(self, day: date) -> datetime:
        return datetime.combine(day, time.min, tzinfo=self.account.zone)

    def record_filter(self) -> RecordFilter:
        """What to search, count and export (call after is_valid())."""
        data = self.cleaned_data
        agent = self.lock_agent if self.lock_agent is not None else data.get("agent")
        return RecordFilter(
            q=data.get("q") or None,
            agent=agent,
            openid=(data.get("openid") or "").strip() or None,
            kinds=tuple(data["kinds"]) if data.get("kinds") else None,
            since=self._start_of(data["since"]) if data.get("since") else None,
            until=self._start_of(data["until"] + timedelta(days=1)) if data.get("until") else None,
        )

    def is_filtered(self) -> bool:
        data = getattr(self, "cleaned_data", {})
        return any(data.get(k) for k in ("q", "agent", "openid", "kinds", "since", "until"))


def _text_within_send_limit(text: str) -> str:
    return text_for_wechat(
        text,
        blank=_("Write the reply's text."),
        too_long=_("The text is %(size)s bytes; WeChat sends at most %(limit)s bytes (about 680 Chinese characters). Shorten it."),
    )


class QuickReplyForm(UncutInputsMixin, forms.Form):
    """A quick reply: a text, or an image, voice, video or published article from the
    account's library. `shared` is offered to supervisors only (the view says who)."""

    title = forms.CharField(
        label=_("Title"), max_length=QUICK_REPLY_TITLE_MAX,
        help_text=_("What you type after / to find it, e.g. shipping."),
    )
    msgtype = forms.ChoiceField(
        label=_("Kind"), initial=MsgType.TEXT, required=False,
        choices=[
            (MsgType.TEXT, _("Text")), (MsgType.IMAGE, _("Image")), (MsgType.VOICE, _("Voice")),
            (MsgType.VIDEO, _("Video")), (MsgType.MPNEWSARTICLE, _("Published article")),
        ],
    )
    text = forms.CharField(
        label=_("Text"), strip=False, widget=forms.Textarea(attrs={"rows": 5}), required=False,
        help_text=_("For a text reply. As long as a text message WeChat sends: up to 2048 bytes (about 680 Chinese characters)."),
    )
    library = LibraryChoiceField(
        label=_("From the library"), required=False, choices=(),
        help_text=_("For an image, voice, video or published article reply: an item of this account's library."),
    )
    shared = forms.BooleanField(
        label=_("Shared with every agent of this official account"), required=False,
        help_text=_("Otherwise only you see it."),
    )

    def __init__(self, *args: Any, can_share: bool, account: OfficialAccount, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.account = account
        if not can_share:
            del self.fields["shared"]
        groups: list[tuple[str, list[tuple[str, str]]]] = []
        for msgtype, kind in QUICK_REPLY_LIBRARY_KINDS.items():
            choices = library_choices(account=account, kinds=(kind,))
            if choices:
                # The value says the kind too: an image and a voice may share a media_id.
                groups.append((str(LibraryItem.Kind(kind).label), [(f"{msgtype}:{ident}", title) for ident, title in choices]))
        field = cast(LibraryChoiceField, self.fields["library"])
        field.choices = [("", _("Choose one")), *groups]
        field.lookup = self._library_lookup
        # An item older than those listed (named by the reply being edited, or posted).
        _library_offer(self, "library", lambda item: (
            str(LibraryItem.Kind(item.kind).label), [(self._library_value(item), item.title or item.ident)]
        ))
        field.error_messages["invalid_choice"] = _(
            "That item is not in this account's library (any more). Choose one of the listed items; "
            "the library is copied from WeChat every few minutes."
        )
        if not groups:
            field.help_text = _("The library is empty. It is copied from WeChat every few minutes; a supervisor can sync it now on the Sync page.")

    def _library_lookup(self, value: str) -> LibraryItem | None:
        """The library item a "msgtype:ident" value names (of the kind that message type sends)."""
        msgtype, _sep, ident = value.partition(":")
        kind = QUICK_REPLY_LIBRARY_KINDS.get(msgtype)
        return library_item_get(account_id=self.account.pk, kinds=(kind,), ident=ident) if kind else None

    @staticmethod
    def _library_value(item: LibraryItem) -> str:
        msgtype = next(m for m, k in QUICK_REPLY_LIBRARY_KINDS.items() if k == item.kind)
        return f"{msgtype}:{item.ident}"

    def clean_title(self) -> str:
        return " ".join(self.cleaned_data["title"].split())

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        # A form posted without the kind (as before media replies) is a text reply.
        msgtype = data["msgtype"] = data.get("msgtype") or MsgType.TEXT
        data["library_ident"] = ""
        if msgtype == MsgType.TEXT:
            if "text" not in self.errors:
                try:
                    data["text"] = _text_within_send_limit(data.get("text") or "")
                except ValidationError as error:
                    self.add_error("text", error)
        else:
            data["text"] = ""
            picked = data.get("library") or ""
            kind, _sep, ident = picked.partition(":")
            if "library" in self.errors:
                return data
            if not picked:
                self.add_error("library", _("Pick the library item this reply sends."))
            elif kind != msgtype or library_item_get(
                account_id=self.account.pk, kinds=(QUICK_REPLY_LIBRARY_KINDS[msgtype],), ident=ident
            ) is None:
                self.add_error("library", _("Pick an item of the kind chosen above."))
            else:
                data["library_ident"] = ident
        return data


class QuickReplyFilterForm(UncutInputsMixin, forms.Form):
    q = forms.CharField(
        label=_("Search"), required=False, max_length=200,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("Title or text")}),
    )
    scope = forms.ChoiceField(
        label=_("Show"), required=False,
        choices=[("all", _("All I can use")), ("shared", _("Shared")), ("mine", _("Mine"))],
    )
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


class ConversationFindForm(UncutInputsMixin, forms.Form):
    """Search within one conversation, and jump to a day of it."""

    q = forms.CharField(
        label=_("Find in this conversation"), required=False, max_length=200,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("Words, e.g. 退款")}),
    )
    day = DayField(label=_("Jump to a date"), required=False)
