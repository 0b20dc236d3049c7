"""What the timeline shows for media: the kept file of a customer's record, and the
library item a message named (its title instead of an id)."""

from __future__ import annotations

from django import template

from messaging.media import library_item_get
from messaging.models import LibraryItem, MediaFile, MessageRecord, OutboundMessage
from messaging.selectors import LIBRARY_KINDS_BY_MSGTYPE, outbound_library_ident

register = template.Library()

@register.simple_tag
def record_media(record: MessageRecord) -> MediaFile | None:
    """The file a customer's image or voice record arrived with, if kfadmin keeps one
    (only records that can have one are looked up)."""
    if hasattr(record, "timeline_media"):  # the timeline read them all at once
        return record.timeline_media
    if record.text not in ("[image]", "[voice]") or not record.is_customer_message:
        return None
    return MediaFile.objects.filter(record=record).first()


@register.simple_tag
def library_item(outbound: OutboundMessage) -> LibraryItem | None:
    """The library item a message sent by id (not a kept file), for its title."""
    if hasattr(outbound, "timeline_library_item"):  # the timeline read them all at once
        return outbound.timeline_library_item
    ident = outbound_library_ident(outbound)
    if not ident:
        return None
    kinds = LIBRARY_KINDS_BY_MSGTYPE[outbound.msgtype]
    return library_item_get(account_id=outbound.official_account_id, kinds=kinds, ident=ident)
