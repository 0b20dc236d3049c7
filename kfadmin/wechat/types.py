"""Dataclasses for the kf API. Field names are WeChat's wire names.

Results are built by :func:`from_dict`, which coerces scalars to the annotated type
(WeChat documents ``kf_id`` both as a string and as a number, and
``invite_expire_time`` both ways too — wechat-kf-api.md §1.5), fills missing keys
with defaults and ignores unknown keys, so a new field on WeChat's side never breaks
a sync.
"""

from __future__ import annotations

import builtins
import dataclasses
import functools
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import WeChatResponseError

__all__ = [
    "AccessToken",
    "Account",
    "AccountList",
    "MaterialCount",
    "MaterialItem",
    "MaterialList",
    "MediaContent",
    "MenuOption",
    "MsgArticle",
    "MsgMenu",
    "MsgMinipPage",
    "MsgMusic",
    "MsgRecord",
    "MsgRecordList",
    "MsgVideo",
    "NewsContent",
    "NewsItem",
    "OnlineAccount",
    "OnlineList",
    "PublishedItem",
    "PublishedList",
    "Session",
    "SessionList",
    "UploadedMedia",
    "WaitCase",
    "from_dict",
]

T = TypeVar("T")


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class AccessToken:
    """Answer of ``/cgi-bin/token`` or ``/cgi-bin/stable_token``.

    ``expires_in`` is in seconds. The token is kept out of ``repr`` so it cannot
    leak into logs or tracebacks.
    """

    access_token: str = field(default="", repr=False)
    expires_in: int = 0


@dataclass(frozen=True)
class Account:
    """One entry of ``getkflist``'s ``kf_list``."""

    kf_account: str = ""
    kf_nick: str = ""
    kf_id: str = ""
    kf_headimgurl: str = ""
    kf_wx: str = ""
    invite_wx: str = ""
    invite_expire_time: int = 0
    invite_status: str = ""


@dataclass(frozen=True)
class AccountList:
    """Answer of ``GET /cgi-bin/customservice/getkflist``."""

    kf_list: list[Account] = field(default_factory=list)


@dataclass(frozen=True)
class OnlineAccount:
    """One entry of ``getonlinekflist``'s ``kf_online_list`` (status 0 offline, 1 web)."""

    kf_account: str = ""
    status: int = 0
    kf_id: str = ""
    accepted_case: int = 0


@dataclass(frozen=True)
class OnlineList:
    """Answer of ``GET /cgi-bin/customservice/getonlinekflist``."""

    kf_online_list: list[OnlineAccount] = field(default_factory=list)


@dataclass(frozen=True)
class Session:
    """A customer session: ``getsession`` (``kf_account`` empty when nobody serves the
    customer), an entry of ``getsessionlist`` or of ``getwaitcase``."""

    kf_account: str = ""
    openid: str = ""
    createtime: int = 0
    latest_time: int = 0


@dataclass(frozen=True)
class SessionList:
    """Answer of ``GET /customservice/kfsession/getsessionlist``."""

    sessionlist: list[Session] = field(default_factory=list)


@dataclass(frozen=True)
class WaitCase:
    """Answer of ``GET /customservice/kfsession/getwaitcase``: ``count`` is the total
    number of waiting customers and may exceed the (at most 100) listed entries."""

    count: int = 0
    waitcaselist: list[Session] = field(default_factory=list)


@dataclass(frozen=True)
class MsgRecord:
    """One chat-history record (``opercode`` 2002 = agent sent, 2003 = agent received)."""

    worker: str = ""
    openid: str = ""
    opercode: int = 0
    text: str = ""
    time: int = 0


@dataclass(frozen=True)
class MsgRecordList:
    """One page of ``POST /customservice/msgrecord/getmsglist``.

    ``msgid`` is the id to pass as the next request's ``msgid``; ``number`` is how
    many records this page holds.
    """

    recordlist: list[MsgRecord] = field(default_factory=list)
    number: int = 0
    msgid: int = 0


# --------------------------------------------------------------- media and materials


@dataclass(frozen=True)
class UploadedMedia:
    """Answer of ``POST /cgi-bin/media/upload``: a temporary media WeChat keeps 3 days
    from ``created_at`` (unix seconds)."""

    type: str = ""
    media_id: str = ""
    created_at: int = 0


@dataclass(frozen=True)
class MediaContent:
    """What ``GET /cgi-bin/media/get`` gave: the file's bytes and the Content-Type
    WeChat named (not trusted: check the bytes). A video answers with a download
    address instead (``video_url``, ``content`` empty)."""

    content: bytes = field(default=b"", repr=False)
    content_type: str = ""
    filename: str = ""
    video_url: str = ""

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass(frozen=True)
class MaterialCount:
    """Answer of ``/cgi-bin/material/get_materialcount``."""

    voice_count: int = 0
    video_count: int = 0
    image_count: int = 0
    news_count: int = 0


@dataclass(frozen=True)
class NewsItem:
    """One article of a news material or of a published message."""

    title: str = ""
    author: str = ""
    digest: str = ""
    content: str = ""
    content_source_url: str = ""
    thumb_media_id: str = ""
    thumb_url: str = ""
    url: str = ""
    show_cover_pic: int = 0
    is_deleted: bool = False


@dataclass(frozen=True)
class NewsContent:
    """The ``content`` of a news material or published message."""

    news_item: list[NewsItem] = field(default_factory=list)
    create_time: int = 0
    update_time: int = 0


@dataclass(frozen=True)
class MaterialItem:
    """One entry of ``batchget_material``: ``name``/``url`` for image, voice and
    video; ``content`` for news."""

    media_id: str = ""
    name: str = ""
    url: str = ""
    update_time: int = 0
    content: NewsContent = field(default_factory=NewsContent)


@dataclass(frozen=True)
class MaterialList:
    """Answer of ``POST /cgi-bin/material/batchget_material``."""

    total_count: int = 0
    item_count: int = 0
    item: list[MaterialItem] = field(default_factory=list)


@dataclass(frozen=True)
class PublishedItem:
    """One entry of ``freepublish/batchget``; ``article_id`` is what an
    ``mpnewsarticle`` kf message sends."""

    article_id: str = ""
    update_time: int = 0
    content: NewsContent = field(default_factory=NewsContent)


@dataclass(frozen=True)
class PublishedList:
    """Answer of ``POST /cgi-bin/freepublish/batchget``."""

    total_count: int = 0
    item_count: int = 0
    item: list[PublishedItem] = field(default_factory=list)


# ------------------------------------------------------------- message payloads


@dataclass(frozen=True)
class MsgVideo:
    """``video`` payload of a kf message."""

    media_id: str = ""
    thumb_media_id: str = ""
    title: str = ""
    description: str = ""


@dataclass(frozen=True)
class MsgMusic:
    """``music`` payload; ``hqmusicurl`` is preferred by the WeChat app on Wi-Fi."""

    title: str = ""
    description: str = ""
    musicurl: str = ""
    hqmusicurl: str = ""
    thumb_media_id: str = ""


@dataclass(frozen=True)
class MsgArticle:
    """One article of a ``news`` message (WeChat accepts exactly one)."""

    title: str = ""
    description: str = ""
    url: str = ""
    picurl: str = ""


@dataclass(frozen=True)
class MenuOption:
    """One tappable option of a ``msgmenu`` message; the tap comes back as a text
    message carrying ``bizmsgmenuid`` = ``id``."""

    id: str = ""
    content: str = ""


@dataclass(frozen=True)
class MsgMenu:
    """``msgmenu`` payload. The attribute is called ``list`` because that is the wire
    name, hence the ``builtins.list`` spelling below."""

    head_content: str = ""
    list: builtins.list[MenuOption] = field(default_factory=builtins.list)
    tail_content: str = ""


@dataclass(frozen=True)
class MsgMinipPage:
    """``miniprogrampage`` payload (mini-program card)."""

    title: str = ""
    appid: str = ""
    pagepath: str = ""
    thumb_media_id: str = ""


# ------------------------------------------------------------------ from_dict


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    # Annotations are strings (postponed evaluation); resolve them in the module.
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def from_dict(cls: type[T], data: Any) -> T:
    """Build dataclass ``cls`` from a decoded JSON object.

    Scalars are coerced to the annotated type (numbers given as strings and the
    reverse), nested dataclasses and lists of them are built recursively, missing
    keys keep their defaults and unknown keys are ignored. ``None`` counts as
    missing. Raises :class:`WeChatResponseError` when a value cannot be coerced.
    """
    if not isinstance(data, Mapping):
        raise WeChatResponseError(
            None, f"Expected a JSON object for {cls.__name__}, got {type(data).__name__}."
        )
    kwargs: dict[str, Any] = {}
    # A class is hashable; mypy does not see that for a type variable's `type[T]`.
    for name, annotation in _field_types(typing.cast(type, cls)).items():
        value = data.get(name)
        if value is None:
            continue
        kwargs[name] = _coerce(annotation, value, f"{cls.__name__}.{name}")
    return cls(**kwargs)


def _coerce(annotation: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if not isinstance(value, builtins.list):
            raise WeChatResponseError(None, f"Expected a list for {where}.")
        return [_coerce(item_type, item, f"{where}[]") for item in value]
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value)
    if annotation is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise WeChatResponseError(None, f"Expected a string for {where}.")
        if isinstance(value, float) and value.is_integer():
            # JSON has one number type; 1001.0 is the id "1001", not "1001.0".
            value = int(value)
        return value if isinstance(value, str) else str(value)
    if annotation is int:
        return _to_int(value, where)
    if annotation is bool:
        # WeChat writes flags both as JSON booleans and as 0/1.
        return value not in (False, 0, "0", "", "false")
    return value


def _to_int(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise WeChatResponseError(None, f"Expected a number for {where}, got a boolean.")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            # Seen as "no invitation" for invite_expire_time; treat like a missing key.
            return 0
        try:
            return int(text)
        except ValueError:
            pass
    raise WeChatResponseError(None, f"Expected a number for {where}, got {value!r}.")
