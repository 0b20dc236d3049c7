"""What the timeline shows for media: the kept file of a customer's record, and the
library item a message named (its title instead of an id)."""

from __future__ import annotations

from django import template

from messaging.media import library_item_get
from messaging.models import LibraryItem, MediaFile, MessageRecord, OutboundMessage

register = template.Library()

# The library kinds an id in each message type can be.
_KINDS_BY_MSGTYPE = {
    "image": (LibraryItem.Kind.IMAGE,),
    "voice": (LibraryItem.Kind.VOICE,),
    "video": (LibraryItem.Kind.VIDEO,),
    "mpnews": (LibraryItem.Kind.NEWS,),
    "mpnewsarticle": (LibraryItem.Kind.ARTICLE,),
}


@register.simple_tag
def record_media(record: MessageRecord) -> MediaFile | None:
    """The file a customer's image or voice record arrived with, if kfadmin keeps one
    (only records that can have one are looked up)."""
    if record.text not in ("[image]", "[voice]") or not record.is_customer_message:
        return None
    return MediaFile.objects.filter(record=record).first()


@register.simple_tag
def library_item(outbound: OutboundMessage) -> LibraryItem | None:
    """The library item a message sent by id (not a kept file), for its title."""
    kinds = _KINDS_BY_MSGTYPE.get(outbound.msgtype)
    if kinds is None or outbound.media_id is not None:
        return None
    payload = outbound.payload or {}
    ident = payload.get("article_id") if outbound.msgtype == "mpnewsarticle" else payload.get("media_id")
    return library_item_get(account_id=outbound.official_account_id, kinds=kinds, ident=str(ident or ""))
