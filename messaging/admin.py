"""Admin for the chat archive and outbound messages (read-only)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from accounts.admin import ReadOnlyAdmin
from messaging.models import (
    CallbackNonce,
    ConversationSeen,
    ExportJob,
    LibraryItem,
    MediaFile,
    MessageRecord,
    OutboundMessage,
    QuickReply,
    QuickReplyUse,
)


@admin.register(MessageRecord)
class MessageRecordAdmin(ReadOnlyAdmin):
    list_display = ["time", "official_account", "openid", "worker", "opercode", "short_text", "source"]
    list_filter = ["official_account", "source", "opercode"]
    search_fields = ["openid", "worker"]
    date_hierarchy = "time"
    exclude = ["digest"]
    readonly_fields = ["digest_hex"]
    # The archive can hold millions of rows: no COUNT(*) over all of them per page.
    show_full_result_count = False

    @admin.display(description=_("text"))
    def short_text(self, obj: MessageRecord) -> str:
        return obj.text if len(obj.text) <= 60 else obj.text[:59] + "…"

    @admin.display(description=_("digest"))
    def digest_hex(self, obj: MessageRecord) -> str:
        return bytes(obj.digest).hex()


@admin.register(OutboundMessage)
class OutboundMessageAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "official_account", "customer", "agent", "msgtype", "status", "errcode", "attempts", "sent_at"]
    list_filter = ["official_account", "status", "msgtype"]
    search_fields = ["customer__openid", "agent__kf_account", "error"]
    date_hierarchy = "created_at"
    list_select_related = ["customer", "agent", "official_account"]


@admin.register(CallbackNonce)
class CallbackNonceAdmin(ReadOnlyAdmin):
    list_display = ["official_account", "timestamp", "nonce"]
    list_filter = ["official_account"]


@admin.register(QuickReply)
class QuickReplyAdmin(ReadOnlyAdmin):
    """Managed on the quick replies page, where changes are audited."""

    list_display = ["title", "official_account", "owner", "msgtype", "updated_at"]
    list_filter = ["official_account", "msgtype"]
    search_fields = ["title"]
    list_select_related = ["official_account", "owner"]


@admin.register(QuickReplyUse)
class QuickReplyUseAdmin(ReadOnlyAdmin):
    list_display = ["reply", "user", "count", "last_used_at"]
    list_select_related = ["reply", "user"]
@admin.register(ConversationSeen)
class ConversationSeenAdmin(ReadOnlyAdmin):
    list_display = ["user", "official_account", "openid", "seen_at"]
    list_filter = ["official_account"]
    search_fields = ["user__username", "openid"]
    list_select_related = ["user", "official_account"]


@admin.register(MediaFile)
class MediaFileAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "official_account", "customer", "kind", "direction", "state", "content_type", "size", "uploads", "expires_at"]
    list_filter = ["official_account", "kind", "direction", "state"]
    search_fields = ["customer__openid", "media_id", "name"]
    date_hierarchy = "created_at"
    list_select_related = ["customer", "official_account"]


@admin.register(LibraryItem)
class LibraryItemAdmin(ReadOnlyAdmin):
    list_display = ["official_account", "kind", "title", "ident", "updated_at", "synced_at"]
    list_filter = ["official_account", "kind"]
    search_fields = ["title", "ident"]


# Requested and downloaded from the history's exports page, where both are audited.
@admin.register(ExportJob)
class ExportJobAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "official_account", "requested_by", "export_format", "status", "rows_written", "expires_at"]
    list_filter = ["official_account", "status", "export_format"]
    date_hierarchy = "created_at"
    list_select_related = ["official_account", "requested_by"]
