"""Admin for official accounts, agents, roles, sync state and the audit log.

Read-mostly: what syncs and services write is shown, not edited here. Secrets
(AppSecret, access token, callback token, EncodingAESKey) are never shown in clear;
the account form takes them write-only.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db import models
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from accounts.models import (
    Agent,
    AgentPresence,
    AlertPreference,
    AuditEvent,
    Membership,
    OfficialAccount,
    SyncState,
)
from kfadmin.secrets import mask

_SECRET_FIELDS = ("secret", "callback_token", "encoding_aes_key")


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by syncs and services: viewable, never added or edited by hand."""

    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class OfficialAccountForm(forms.ModelForm):
    """Secrets are write-only: left blank on change, the stored value is kept."""

    secret = forms.CharField(
        label=_("AppSecret"), required=False, strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("Leave blank to keep the stored AppSecret."),
    )
    callback_token = forms.CharField(
        label=_("callback token"), required=False, strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("Leave blank to keep the stored value."),
    )
    encoding_aes_key = forms.CharField(
        label=_("EncodingAESKey"), required=False, strip=True,
        widget=forms.PasswordInput(render_value=False),
        help_text=_("43 letters and digits. Leave blank to keep the stored value."),
    )

    api_base_url = forms.URLField(
        label=_("API base URL"), assume_scheme="https",
        initial=OfficialAccount._meta.get_field("api_base_url").default,
    )

    class Meta:
        model = OfficialAccount
        fields = [
            "name", "appid", "secret", "wechat_id", "original_id", "callback_token",
            "encoding_aes_key", "callback_mode", "api_base_url", "token_endpoint", "time_zone",
            "agent_capacity", "alert_queue_wait_seconds", "alert_unanswered_seconds", "is_active",
        ]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The widgets never render the stored secrets.
        for name in _SECRET_FIELDS:
            self.initial[name] = ""

    def clean_secret(self) -> str:
        value = self.cleaned_data["secret"]
        if not value and not (self.instance.pk and self.instance.secret):
            raise forms.ValidationError(_("Enter the AppSecret."))
        return value

    def clean_encoding_aes_key(self) -> str:
        value = self.cleaned_data["encoding_aes_key"]
        if value and (len(value) != 43 or not value.isalnum() or not value.isascii()):
            raise forms.ValidationError(_("The EncodingAESKey is 43 letters and digits."))
        return value

    def clean(self) -> dict:
        super().clean()
        cleaned = self.cleaned_data
        mode = cleaned.get("callback_mode")
        has_key = cleaned.get("encoding_aes_key") or (self.instance.pk and self.instance.encoding_aes_key)
        if mode and mode != OfficialAccount.CallbackMode.PLAIN and not has_key:
            # Without the key every encrypted push would be refused.
            self.add_error("encoding_aes_key", _("Compatible and safe mode need the EncodingAESKey."))
        return cleaned

    def save(self, commit: bool = True) -> OfficialAccount:
        account = super().save(commit=False)
        for name in _SECRET_FIELDS:
            if not self.cleaned_data.get(name) and self.instance.pk:
                # Blank means "keep": restore what is stored.
                stored = OfficialAccount.objects.filter(pk=self.instance.pk).first()
                setattr(account, name, getattr(stored, name) if stored else "")
        if "appid" in self.changed_data or self.cleaned_data.get("secret"):
            # A token belongs to the credentials that fetched it.
            account.access_token = ""
            account.access_token_expires_at = None
        if commit:
            account.save()
        return account


@admin.register(OfficialAccount)
class OfficialAccountAdmin(admin.ModelAdmin):
    form = OfficialAccountForm
    list_display = [
        "name", "appid", "wechat_id", "api_base_url", "token_endpoint", "callback_mode", "waiting_count", "is_active",
    ]
    list_filter = ["is_active", "token_endpoint", "callback_mode"]
    search_fields = ["name", "appid", "wechat_id", "original_id"]
    readonly_fields = [
        "secret_masked", "callback_token_masked", "encoding_aes_key_masked", "access_token_masked",
        "access_token_expires_at", "waiting_count", "created_at", "updated_at",
    ]

    @admin.display(description=_("stored AppSecret"))
    def secret_masked(self, obj: OfficialAccount) -> str:
        return mask(obj.secret)

    @admin.display(description=_("stored callback token"))
    def callback_token_masked(self, obj: OfficialAccount) -> str:
        return mask(obj.callback_token)

    @admin.display(description=_("stored EncodingAESKey"))
    def encoding_aes_key_masked(self, obj: OfficialAccount) -> str:
        return mask(obj.encoding_aes_key)

    @admin.display(description=_("access token"))
    def access_token_masked(self, obj: OfficialAccount) -> str:
        return mask(obj.access_token)


@admin.register(Agent)
class AgentAdmin(ReadOnlyAdmin):
    list_display = [
        "kf_account", "kf_nick", "kf_id", "official_account", "kf_wx", "invite_status",
        "online_status", "accepted_case", "last_listed_at", "deleted_at",
    ]
    list_filter = ["official_account", "online_status", "invite_status", ("deleted_at", admin.EmptyFieldListFilter)]
    search_fields = ["kf_account", "kf_nick", "kf_id", "kf_wx", "invite_wx"]
    list_select_related = ["official_account"]


@admin.register(AgentPresence)
class AgentPresenceAdmin(ReadOnlyAdmin):
    list_display = ["agent", "at", "online_status", "accepted_case"]
    list_filter = ["agent__official_account", "online_status"]
    search_fields = ["agent__kf_account", "agent__kf_nick"]
    date_hierarchy = "at"
    list_select_related = ["agent"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "official_account", "role", "agent", "created_at"]
    list_filter = ["official_account", "role"]
    search_fields = ["user__username", "agent__kf_account"]
    raw_id_fields = ["user", "agent"]
    readonly_fields = ["created_at"]
    list_select_related = ["user", "official_account", "agent"]


@admin.register(SyncState)
class SyncStateAdmin(ReadOnlyAdmin):
    list_display = [
        "official_account", "job", "running_since", "last_started_at", "last_success_at",
        "last_error_at", "last_error", "cursor", "paused_until",
    ]
    list_filter = ["official_account", "job"]
    search_fields = ["last_error"]


@admin.register(AlertPreference)
class AlertPreferenceAdmin(ReadOnlyAdmin):
    list_display = ["user", "title_count", "sound", "notify", "updated_at"]
    search_fields = ["user__username"]
    list_select_related = ["user"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor_label", "official_account", "action", "target", "result", "errcode"]
    list_filter = ["result", "action", "official_account"]
    search_fields = ["actor_label", "action", "target", "message"]
    date_hierarchy = "at"

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # the audit trail is append-only
