"""Forms for agents, dashboard users and the audit-log filter.

Everything WeChat would refuse for its shape (prefix, nickname, WeChat ID, avatar file)
is checked here first, so most mistakes never reach WeChat; `add_wechat_error` puts
WeChat's own refusals next to the field they concern.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.forms import UsernameField
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from PIL import Image, UnidentifiedImageError

from accounts.models import Agent, Membership, OfficialAccount
from accounts.services import RoleChoice, ServiceError
from kfadmin.forms import DayField

User = get_user_model()

KF_PREFIX_RE = re.compile(r"[A-Za-z0-9_]{1,10}")
# WeChat IDs: 6-20 characters, a letter first, then letters, digits, '_' or '-'.
WECHAT_ID_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{5,19}")
NICKNAME_MAX = 16
AVATAR_MAX_BYTES = 5 * 1024 * 1024
AVATAR_ADVISED_SIDE = 640
# Decoding costs about 3 bytes a pixel whatever the file size: a 2 MB JPEG can claim
# 144 megapixels (430 MB decoded). 4096×4096 is far above anything WeChat shows.
AVATAR_MAX_PIXELS = 4096 * 4096
# Pillow's own bomb guard, for any other image opened in this process: it warns above
# this count and refuses above twice it.
Image.MAX_IMAGE_PIXELS = AVATAR_MAX_PIXELS
JPEG_MAGIC = b"\xff\xd8\xff"


# The agent lists the search-as-you-type field suggests from (accounts.views.agent_options).
AGENT_SCOPES = ("bound", "listed", "any")
AGENT_SUGGESTIONS = 20


def agent_label(agent: Agent, *, presence: bool = False) -> str:
    label = f"{agent.display_name} ({agent.kf_account})"
    if presence:
        label += f" · {_('online') if agent.is_online else _('offline')}"
    return label


class AgentPicker(forms.Select):
    """A drop-down for a small team; above settings.AGENT_SELECT_MAX agents a text field
    (accounts/_agent_picker.html) whose <datalist> htmx fills with at most
    AGENT_SUGGESTIONS matches of what is typed. Without JavaScript it is a plain field
    that takes a kf account. One COUNT decides; the large form never lists every agent."""

    def __init__(self, *args, scope: str = "listed", **kwargs):
        super().__init__(*args, **kwargs)
        self.scope = scope

    def is_large(self) -> bool:
        queryset = getattr(self.choices, "queryset", None)
        return queryset is not None and queryset.count() > settings.AGENT_SELECT_MAX

    def render(self, name, value, attrs=None, renderer=None):
        if not self.is_large():
            return super().render(name, value, attrs, renderer)
        final = self.build_attrs(self.attrs, attrs)
        final.pop("required", None)  # the server says what is missing, in words
        element_id = final.get("id") or f"id_{name}"
        final["id"] = element_id
        final["aria-describedby"] = " ".join(filter(None, [final.get("aria-describedby"), f"{element_id}-hint"]))
        return render_to_string("accounts/_agent_picker.html", {
            "name": name,
            "value": self._shown_value(value),
            "attrs": final,
            "id": element_id,
            "options_url": reverse("accounts:agent_options"),
            "scope": self.scope,
            "placeholder": _("Type a name or kf account"),
        })

    def _shown_value(self, value) -> str:
        """The kf account for an agent's id (an initial value, a chosen agent); what
        was typed, as typed, otherwise."""
        if isinstance(value, (list, tuple)):
            value = value[0] if value else ""
        if isinstance(value, Agent):
            return value.kf_account
        text = "" if value is None else str(value)
        if text.isdigit() and len(text) < 19:
            found = Agent.objects.filter(pk=int(text)).values_list("kf_account", flat=True).first()
            return found or ""
        return text


class AgentChoiceField(forms.ModelChoiceField):
    """A choice among the account's kf accounts, each shown by name and kf account;
    with `presence`, also whether the agent is online (who can take a customer now).

    Takes an agent's id (the drop-down) or its kf account (the search-as-you-type
    field of a large team; any text with an '@'), and either only within the queryset.
    `scope` names the list the large field suggests from (AGENT_SCOPES)."""

    widget = AgentPicker

    def __init__(self, *args, presence: bool = False, scope: str = "listed", **kwargs):
        kwargs.setdefault("queryset", Agent.objects.none())
        super().__init__(*args, **kwargs)
        self.presence = presence
        assert scope in AGENT_SCOPES
        self.widget.scope = scope

    def label_from_instance(self, obj: Agent) -> str:
        return agent_label(obj, presence=self.presence)

    def to_python(self, value):
        text = value.strip() if isinstance(value, str) else value
        if isinstance(text, str) and "@" in text:
            queryset = self.queryset
            assert queryset is not None
            try:
                return queryset.get(kf_account=text)
            except (Agent.DoesNotExist, Agent.MultipleObjectsReturned):
                raise forms.ValidationError(
                    self.error_messages["invalid_choice"], code="invalid_choice", params={"value": text}
                ) from None
        return super().to_python(text)


def bound_agents(account: OfficialAccount, *, only: Agent | None = None) -> QuerySet[Agent]:
    """The listed agents bound to a WeChat user, online first: WeChat hands customers
    to and sends as no other. `only`: that one agent (the agent role's own)."""
    agents = Agent.objects.listed().filter(official_account=account).exclude(kf_wx="")
    if only is not None:
        agents = agents.filter(pk=only.pk)
    return agents.order_by("-online_status", "kf_account")


# The mixins below are only ever mixed into forms: to the type checker they are forms.
if TYPE_CHECKING:
    _FormMixinBase = forms.BaseForm
else:
    _FormMixinBase = object


class UncutInputsMixin(_FormMixinBase):
    """Inputs carry no `maxlength`: a browser silently cuts a longer paste to the limit,
    and the cut value would be saved. The form checks the length itself and says so."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.widget.attrs.pop("maxlength", None)


class WeChatErrorsMixin(_FormMixinBase):
    """Show a refused write next to the field it concerns, or above the form."""

    # errcode -> field name
    wechat_error_fields: dict[int, str] = {}

    def add_service_error(self, error: ServiceError) -> None:
        field = self.wechat_error_fields.get(error.errcode) if error.errcode is not None else None
        self.add_error(field if field in self.fields else None, error.message)


def _clean_nickname(value: str) -> str:
    value = value.strip()
    if not value:
        raise forms.ValidationError(_("Enter a nickname."))
    if len(value) > NICKNAME_MAX:
        raise forms.ValidationError(
            _("Use at most %(max)d characters (this one has %(count)d)."),
            params={"max": NICKNAME_MAX, "count": len(value)},
        )
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise forms.ValidationError(_("Remove the control characters from the nickname."))
    return value


class AgentAddForm(UncutInputsMixin, WeChatErrorsMixin, forms.Form):
    wechat_error_fields = {65403: "nickname", 65404: "kf_prefix", 65406: "kf_prefix"}

    kf_prefix = forms.CharField(
        label=_("Account name"),
        max_length=10,
        help_text=_("Up to 10 letters, digits or underscores."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    nickname = forms.CharField(
        label=_("Nickname"),
        max_length=NICKNAME_MAX,
        help_text=_("What customers see, up to 16 characters."),
    )

    def __init__(self, *args, account: OfficialAccount, **kwargs):
        super().__init__(*args, **kwargs)
        self.account = account

    def clean_kf_prefix(self) -> str:
        prefix = self.cleaned_data["kf_prefix"].strip()
        if not KF_PREFIX_RE.fullmatch(prefix):
            raise forms.ValidationError(
                _("Use only letters, digits and underscores, at most 10 of them.")
            )
        kf_account = self.account.full_kf_account(prefix)
        if Agent.objects.listed().filter(
            official_account=self.account, kf_account=kf_account
        ).exists():
            raise forms.ValidationError(
                _("%(account)s already exists. Choose another name."), params={"account": kf_account}
            )
        return prefix

    def clean_nickname(self) -> str:
        return _clean_nickname(self.cleaned_data["nickname"])


class AgentNicknameForm(UncutInputsMixin, WeChatErrorsMixin, forms.Form):
    wechat_error_fields = {65403: "nickname"}

    nickname = forms.CharField(label=_("Nickname"), max_length=NICKNAME_MAX)

    def clean_nickname(self) -> str:
        return _clean_nickname(self.cleaned_data["nickname"])


@dataclass(frozen=True)
class AvatarImage:
    content: bytes
    width: int
    height: int

    @property
    def warnings(self) -> list[str]:
        notes = []
        if self.width != self.height:
            notes.append(
                str(_("The image is %(w)d×%(h)d, not square; WeChat shows avatars square, so it will be cropped or stretched."))
                % {"w": self.width, "h": self.height}
            )
        if min(self.width, self.height) < AVATAR_ADVISED_SIDE:
            notes.append(
                str(_("The image is smaller than the advised 640×640 and may look blurred."))
            )
        return notes


class _TooManyPixels(Exception):
    pass


class AgentAvatarForm(WeChatErrorsMixin, forms.Form):
    wechat_error_fields = {40005: "avatar", 40009: "avatar", 41005: "avatar", 61457: "avatar"}

    avatar = forms.FileField(
        label=_("Avatar (JPEG)"),
        help_text=_("JPEG only, at most 5 MB; 640×640 pixels is best."),
        widget=forms.ClearableFileInput(attrs={"accept": "image/jpeg"}),
    )

    def clean_avatar(self) -> AvatarImage:
        upload = self.cleaned_data["avatar"]
        if upload.size > AVATAR_MAX_BYTES:
            raise forms.ValidationError(
                _("The file is %(size)s MB; WeChat accepts at most 5 MB."),
                params={"size": f"{upload.size / 1024 / 1024:.1f}"},
            )
        content = upload.read()
        if not content.startswith(JPEG_MAGIC):
            raise forms.ValidationError(
                _("This is not a JPEG file. WeChat accepts JPEG avatars only; save the picture as .jpg and try again.")
            )
        try:
            with Image.open(io.BytesIO(content)) as image:
                image_format = image.format
                width, height = image.size
                # Opening reads the header only; refuse a huge picture before the
                # pixels are decoded into memory.
                if width * height > AVATAR_MAX_PIXELS:
                    raise _TooManyPixels
                # Decoding the pixels catches files that only start like a JPEG.
                image.load()
        except (_TooManyPixels, Image.DecompressionBombError):
            raise forms.ValidationError(
                _("The image has more pixels than 4096×4096 and is not read; 640×640 is best.")
            ) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise forms.ValidationError(
                _("The JPEG file is damaged and cannot be read. Export it again and retry.")
            ) from None
        if image_format != "JPEG":
            raise forms.ValidationError(_("This is not a JPEG file. WeChat accepts JPEG avatars only."))
        return AvatarImage(content=content, width=width, height=height)


class AgentInviteForm(UncutInputsMixin, WeChatErrorsMixin, forms.Form):
    wechat_error_fields = {65407: "invite_wx", 65408: "invite_wx", 65409: "invite_wx", 65410: "invite_wx"}

    invite_wx = forms.CharField(
        label=_("WeChat ID to invite"),
        max_length=20,
        help_text=_("The personal WeChat ID (微信号) of the person who will work as this agent."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )

    def clean_invite_wx(self) -> str:
        value = self.cleaned_data["invite_wx"].strip()
        if not WECHAT_ID_RE.fullmatch(value):
            raise forms.ValidationError(
                _("A WeChat ID has 6 to 20 letters, digits, '_' or '-', and starts with a letter.")
            )
        return value


# --------------------------------------------------------------------------- users


ROLE_CHOICES = [("", _("No access")), *Membership.Role.choices]


@dataclass(frozen=True)
class RoleRow:
    """One official account's row in a roles form, for the template."""

    account: OfficialAccount
    role: forms.BoundField
    agent: forms.BoundField


class RolesFieldsMixin(_FormMixinBase):
    """A role field and a kf-account field per official account the supervisor manages."""

    def _add_role_fields(self, accounts: list[OfficialAccount], memberships: dict[int, Membership]) -> None:
        self.accounts = accounts
        for account in accounts:
            membership = memberships.get(account.pk)
            self.fields[f"role_{account.pk}"] = forms.ChoiceField(
                label=_("Role on %(account)s") % {"account": account.name},
                choices=ROLE_CHOICES,
                required=False,
                initial=membership.role if membership else "",
            )
            self.fields[f"agent_{account.pk}"] = AgentChoiceField(
                label=_("Works as (agents only)"),
                queryset=Agent.objects.listed().filter(official_account=account),
                required=False,
                initial=membership.agent_id if membership else None,
                empty_label=_("— choose a kf account —"),
            )

    def role_rows(self) -> list[RoleRow]:
        return [
            RoleRow(account=a, role=self[f"role_{a.pk}"], agent=self[f"agent_{a.pk}"])
            for a in self.accounts
        ]

    def _clean_roles(self, cleaned: dict) -> None:
        for account in self.accounts:
            role = cleaned.get(f"role_{account.pk}")
            agent = cleaned.get(f"agent_{account.pk}")
            if role == Membership.Role.AGENT and agent is None:
                self.add_error(
                    f"agent_{account.pk}", _("Choose the kf account this person works as.")
                )
            elif role != Membership.Role.AGENT and agent is not None:
                self.add_error(
                    f"agent_{account.pk}", _("Only the agent role works as a kf account; clear this field.")
                )

    def role_choices(self) -> list[RoleChoice]:
        data = self.cleaned_data
        return [
            RoleChoice(
                account=account,
                role=data.get(f"role_{account.pk}") or "",
                agent=data.get(f"agent_{account.pk}"),
            )
            for account in self.accounts
        ]


class UserCreateForm(UncutInputsMixin, RolesFieldsMixin, forms.Form):
    username = UsernameField(label=_("Username"), max_length=150)
    password1 = forms.CharField(
        label=_("Password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label=_("Password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def __init__(self, *args, accounts: list[OfficialAccount], current: OfficialAccount, **kwargs):
        super().__init__(*args, **kwargs)
        self._add_role_fields(accounts, {})
        # A new user most often joins the account being worked on.
        self.fields[f"role_{current.pk}"].initial = Membership.Role.AGENT

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        User.username_validator(username)
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(_("This username is taken."))
        return username

    def clean(self) -> dict:
        super().clean()
        cleaned = self.cleaned_data
        p1, p2 = cleaned.get("password1"), cleaned.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", _("The two passwords differ."))
        elif p1:
            try:
                password_validation.validate_password(p1, User(username=cleaned.get("username", "")))
            except forms.ValidationError as error:
                self.add_error("password1", error)
        self._clean_roles(cleaned)
        if not self.errors and not any(cleaned.get(f"role_{a.pk}") for a in self.accounts):
            self.add_error(None, _("Give the new user a role on at least one official account."))
        return cleaned


class UserRolesForm(RolesFieldsMixin, forms.Form):
    def __init__(self, *args, accounts: list[OfficialAccount], user, **kwargs):
        super().__init__(*args, **kwargs)
        memberships = {m.official_account_id: m for m in Membership.objects.filter(user=user)}
        self._add_role_fields(accounts, memberships)

    def clean(self) -> dict:
        super().clean()
        cleaned = self.cleaned_data
        self._clean_roles(cleaned)
        return cleaned


# --------------------------------------------------------------------------- audit log


class AgentListForm(UncutInputsMixin, forms.Form):
    """The agents table's search, status filter and page (all in the query string)."""

    q = forms.CharField(
        label=_("Search"), required=False, max_length=64, strip=True,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("kf account or nickname")}),
    )
    status = forms.ChoiceField(
        label=_("Show"), required=False,
        choices=[("", _("All agents")), ("online", _("Online")), ("offline", _("Offline")),
                 ("unbound", _("Not bound to WeChat"))],
    )
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


class UserListForm(UncutInputsMixin, forms.Form):
    """The users table's search and page."""

    q = forms.CharField(
        label=_("Search"), required=False, max_length=150, strip=True,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": _("User name")}),
    )
    page = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)


class AuditFilterForm(forms.Form):
    actor = forms.TypedChoiceField(label=_("Person"), required=False, coerce=int, empty_value=None)
    action = forms.ChoiceField(label=_("Action"), required=False)
    day_from = DayField(label=_("From"), required=False)
    day_to = DayField(label=_("To"), required=False)
    cursor = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, actors: list[tuple[int, str]], actions: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        actor, action = self.fields["actor"], self.fields["action"]
        assert isinstance(actor, forms.ChoiceField) and isinstance(action, forms.ChoiceField)
        actor.choices = [("", _("Everyone")), *actors]
        action.choices = [("", _("All actions")), *actions]

    def clean(self) -> dict:
        super().clean()
        cleaned = self.cleaned_data
        start, end = cleaned.get("day_from"), cleaned.get("day_to")
        if start and end and start > end:
            self.add_error("day_to", _("The end date is before the start date."))
        return cleaned


# --------------------------------------------------------------------------- alerts


class AlertPreferenceForm(forms.Form):
    """How this person is told that a customer waits or wrote."""

    title_count = forms.BooleanField(
        label=_("Count waiting customers and unread messages in the tab title"), required=False
    )
    sound = forms.BooleanField(label=_("Play a sound"), required=False)
    notify = forms.BooleanField(
        label=_("Show a browser notification"), required=False,
        help_text=_("Your browser asks for permission once: use the button below."),
    )


class AlertThresholdsForm(forms.Form):
    """When a customer counts as waiting too long, for this official account.

    Minutes, not seconds, since that is how people think about a queue; from a
    minute (anything shorter alerts on every customer) to a day."""

    queue_wait_minutes = forms.IntegerField(
        label=_("A customer waits in the queue longer than (minutes)"), min_value=1, max_value=1440
    )
    unanswered_minutes = forms.IntegerField(
        label=_("A customer in a session waits for an answer longer than (minutes)"), min_value=1, max_value=1440
    )
