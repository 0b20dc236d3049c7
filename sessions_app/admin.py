"""Admin for customers and sessions: read-only views of what syncs and callbacks wrote."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from accounts.admin import ReadOnlyAdmin
from sessions_app.models import AutoAssign, AutoAssignClaim, Customer, CustomerNote, KfSession


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdmin):
    list_display = [
        "openid", "remark_name", "official_account", "first_seen_at", "last_seen_at", "last_message_at",
        "window_expires_at", "window_remaining", "event_expires_at", "event_remaining", "window_is_open",
    ]
    list_filter = ["official_account"]
    search_fields = ["openid", "remark_name"]
    date_hierarchy = "last_seen_at"
    list_select_related = ["official_account"]

    @admin.display(boolean=True, description=_("can send"))
    def window_is_open(self, obj: Customer) -> bool:
        return obj.window_open()


@admin.register(KfSession)
class KfSessionAdmin(ReadOnlyAdmin):
    list_display = [
        "customer", "official_account", "state", "agent", "created_at", "accepted_at",
        "closed_at", "latest_time", "last_synced_at",
    ]
    list_filter = ["official_account", "state"]
    search_fields = ["customer__openid", "agent__kf_account", "agent__kf_nick"]
    date_hierarchy = "created_at"
    list_select_related = ["customer", "agent", "official_account"]


# Changed from the queue page (audited there), so read-only here like the rest.
@admin.register(AutoAssign)
class AutoAssignAdmin(ReadOnlyAdmin):
    list_display = ["official_account", "state", "strategy", "changed_by", "changed_at", "last_run_at", "last_assigned", "last_failed"]
    list_filter = ["state", "strategy"]
    list_select_related = ["official_account"]


@admin.register(AutoAssignClaim)
class AutoAssignClaimAdmin(ReadOnlyAdmin):
    list_display = ["session", "agent", "until"]
    list_select_related = ["session__customer", "agent"]

@admin.register(CustomerNote)
class CustomerNoteAdmin(ReadOnlyAdmin):
    """Notes are written in the conversation's customer panel, where they are audited."""

    list_display = ["created_at", "customer", "author_label", "text"]
    search_fields = ["customer__openid", "author_label", "text"]
    date_hierarchy = "created_at"
    list_select_related = ["customer"]
