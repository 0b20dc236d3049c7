"""Argument and payload validation, done before any HTTP call.

Everything the client checks locally lives here, as data: :data:`_ARGUMENT_RULES`
for scalar arguments and :data:`MESSAGE_SHAPES` for the message payloads of
``/cgi-bin/message/custom/send``. A failed check raises
:class:`~kfadmin.wechat.errors.WeChatInvalidArgument` with a sentence naming the
argument, so a form can show it as is.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import WeChatInvalidArgument

__all__ = [
    "CONTENT_TYPES",
    "MATERIAL_TYPES",
    "MAX_AVATAR_BYTES",
    "MAX_NICKNAME_CHARS",
    "MAX_RECORD_WINDOW_SECONDS",
    "MEDIA_LIFETIME_SECONDS",
    "MEDIA_RULES",
    "MEDIA_TYPES",
    "MESSAGE_SHAPES",
    "MESSAGE_TYPES",
    "TYPING_COMMANDS",
    "normalise_payload",
    "validate",
    "media_problem",
    "sniff_format",
    "validate_avatar",
    "validate_material_page",
    "validate_media",
    "validate_record_window",
    "voice_seconds",
]

# Limits from wechat-kf-api.md §4.1, §4.4, §6.1 and §6.3.
MAX_NICKNAME_CHARS = 16
MAX_KF_PREFIX_CHARS = 10
MAX_RECORD_WINDOW_SECONDS = 24 * 3600
MAX_RECORDS_PER_PAGE = 10000
MAX_AVATAR_BYTES = 5 * 1024 * 1024
TYPING_COMMANDS: tuple[str, ...] = ("Typing", "CancelTyping")

# A check returns None when the value is fine, otherwise the end of a sentence that
# starts with the argument's name ("kf_account must ...").
Check = Callable[[Any], str | None]


def _is_text(value: Any) -> str | None:
    return None if isinstance(value, str) else f"must be a string, not {type(value).__name__}"


def _not_blank(value: str) -> str | None:
    return None if value.strip() else "must not be empty"


def _max_chars(limit: int) -> Check:
    def check(value: str) -> str | None:
        if len(value) <= limit:
            return None
        return f"must be at most {limit} characters long (it has {len(value)})"

    return check


def _full_kf_account(value: str) -> str | None:
    prefix, at, suffix = value.partition("@")
    if at and prefix and suffix:
        return None
    return (
        "must be the full kf account, prefix@wechat_id: the account prefix, '@', then the "
        f"official account's WeChat ID (got {value!r})"
    )


_KF_PREFIX_RE = re.compile(rf"[A-Za-z0-9_]{{1,{MAX_KF_PREFIX_CHARS}}}")


def _new_kf_prefix(value: str) -> str | None:
    prefix = value.partition("@")[0]
    if _KF_PREFIX_RE.fullmatch(prefix):
        return None
    return (
        f"must start with at most {MAX_KF_PREFIX_CHARS} letters, digits or underscores "
        f"before the '@' (got {prefix!r})"
    )


def _is_int(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    return f"must be an integer, not {type(value).__name__}"


def _between(low: int, high: int | None) -> Check:
    def check(value: int) -> str | None:
        if value < low:
            return f"must be at least {low} (got {value})"
        if high is not None and value > high:
            return f"must be at most {high} (got {value})"
        return None

    return check


def _one_of(choices: tuple[str, ...]) -> Check:
    def check(value: str) -> str | None:
        if value in choices:
            return None
        return f"must be one of {', '.join(repr(c) for c in choices)} (got {value!r})"

    return check


# ------------------------------------------------------------------ payloads


@dataclass(frozen=True)
class ListOf:
    """A list-valued payload key whose items have ``shape``."""

    shape: Shape
    min_items: int = 1
    max_items: int | None = None
    why_max: str = ""


@dataclass(frozen=True)
class Shape:
    """The documented keys of one payload object.

    Every key in ``fields`` is always sent (missing ones as ``""``), matching the
    seed's structs; ``required`` keys must be non-empty strings; at least one of
    ``any_of`` must be non-empty; ``optional`` keys are passed through only when
    given; anything else is rejected, because a misspelt key is silently ignored by
    WeChat. Only what WeChat certainly refuses is required here.
    """

    fields: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    lists: tuple[tuple[str, ListOf], ...] = ()


_MEDIA = Shape(fields=("media_id",), required=("media_id",))
# Every article key is optional on WeChat's side, but an article with neither a
# title nor a link shows nothing.
_ARTICLE = Shape(fields=("title", "description", "url", "picurl"), any_of=("title", "url"))
_MENU_OPTION = Shape(fields=("id", "content"), required=("id", "content"))

# msgtype -> shape of its payload object (wechat-kf-api.md §6.2).
MESSAGE_SHAPES: dict[str, Shape] = {
    "text": Shape(fields=("content",), required=("content",)),
    "image": _MEDIA,
    "voice": _MEDIA,
    "video": Shape(
        fields=("media_id", "thumb_media_id", "title", "description"), required=("media_id",)
    ),
    "music": Shape(
        fields=("title", "description", "musicurl", "hqmusicurl", "thumb_media_id"),
        required=("musicurl", "thumb_media_id"),
    ),
    "news": Shape(
        lists=(
            (
                "articles",
                ListOf(
                    _ARTICLE,
                    min_items=1,
                    max_items=1,
                    why_max="WeChat accepts exactly one article per news message (errcode 45008)",
                ),
            ),
        )
    ),
    "mpnews": _MEDIA,
    "mpnewsarticle": Shape(fields=("article_id",), required=("article_id",)),
    "msgmenu": Shape(
        fields=("head_content", "tail_content"),
        lists=(("list", ListOf(_MENU_OPTION, min_items=1)),),
    ),
    # card_ext is the optional signed extension wechatpy sends; keep it when stored.
    "wxcard": Shape(fields=("card_id",), required=("card_id",), optional=("card_ext",)),
    "miniprogrampage": Shape(
        fields=("title", "appid", "pagepath", "thumb_media_id"),
        required=("appid", "pagepath", "thumb_media_id"),
    ),
}
MESSAGE_TYPES: tuple[str, ...] = tuple(MESSAGE_SHAPES)


# ------------------------------------------------------------------ arguments

_TEXT: tuple[Check, ...] = (_is_text, _not_blank)

# rule name -> (name shown in the message, checks in order; the first failure wins)
_ARGUMENT_RULES: dict[str, tuple[str, tuple[Check, ...]]] = {
    "openid": ("openid", _TEXT),
    "kf_account": ("kf_account", (*_TEXT, _full_kf_account)),
    # Creating an account also enforces WeChat's prefix format (§4.1).
    "new_kf_account": ("kf_account", (*_TEXT, _full_kf_account, _new_kf_prefix)),
    "nickname": ("nickname", (*_TEXT, _max_chars(MAX_NICKNAME_CHARS))),
    "invite_wx": ("invite_wx", _TEXT),
    "command": ("command", (_is_text, _one_of(TYPING_COMMANDS))),
    "msgtype": ("msgtype", (_is_text, _one_of(MESSAGE_TYPES))),
    "starttime": ("starttime", (_is_int, _between(0, None))),
    "endtime": ("endtime", (_is_int, _between(0, None))),
    "msgid": ("msgid", (_is_int, _between(1, None))),
    "number": ("number", (_is_int, _between(1, MAX_RECORDS_PER_PAGE))),
    "media_id": ("media_id", (*_TEXT, _max_chars(256))),
}


def validate(**arguments: Any) -> None:
    """Check each keyword argument against the rule of the same name."""
    for rule, value in arguments.items():
        label, checks = _ARGUMENT_RULES[rule]
        for check in checks:
            problem = check(value)
            if problem:
                raise WeChatInvalidArgument(None, f"{label} {problem}.")


def validate_record_window(starttime: int, endtime: int) -> None:
    """getmsglist accepts windows of at most 24 h with ``endtime >= starttime``."""
    validate(starttime=starttime, endtime=endtime)
    if endtime < starttime:
        raise WeChatInvalidArgument(
            None, f"endtime ({endtime}) must not be earlier than starttime ({starttime})."
        )
    if endtime - starttime > MAX_RECORD_WINDOW_SECONDS:
        raise WeChatInvalidArgument(
            None,
            "The chat-history window must be at most 24 hours "
            f"(endtime - starttime is {endtime - starttime} s).",
        )


def validate_avatar(content: bytes) -> None:
    if not content:
        raise WeChatInvalidArgument(None, "The avatar file is empty.")
    if len(content) > MAX_AVATAR_BYTES:
        raise WeChatInvalidArgument(
            None,
            f"The avatar file is {len(content)} bytes; WeChat accepts at most 5 MB.",
        )


def as_wire_dict(value: Any, where: str) -> dict[str, Any]:
    """A payload given as one of the package's dataclasses or as a mapping, as a dict."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise WeChatInvalidArgument(
        None, f"{where} must be a dict or a kfadmin.wechat dataclass, not {type(value).__name__}."
    )


def normalise_payload(msgtype: str, payload: Any) -> dict[str, Any]:
    """Validate a message payload and return it in wire form, all documented keys set."""
    validate(msgtype=msgtype)
    return _normalise(MESSAGE_SHAPES[msgtype], payload, msgtype)


def _normalise(shape: Shape, payload: Any, where: str) -> dict[str, Any]:
    data = as_wire_dict(payload, where)
    list_specs = dict(shape.lists)
    known = set(shape.fields) | set(shape.optional) | set(list_specs)
    unknown = sorted(set(data) - known)
    if unknown:
        raise WeChatInvalidArgument(
            None,
            f"{where} has unknown keys {', '.join(unknown)}; expected {', '.join(sorted(known))}.",
        )

    result: dict[str, Any] = {}
    for key in shape.fields:
        value = data.get(key)
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise WeChatInvalidArgument(
                None, f"{where}.{key} must be a string, not {type(value).__name__}."
            )
        if key in shape.required and not value.strip():
            raise WeChatInvalidArgument(None, f"{where}.{key} must not be empty.")
        result[key] = value
    if shape.any_of and not any(result[key].strip() for key in shape.any_of):
        raise WeChatInvalidArgument(
            None, f"{where} needs at least one of {' or '.join(shape.any_of)}."
        )
    for key in shape.optional:
        if data.get(key) is not None:
            result[key] = data[key]
    for key, spec in shape.lists:
        items = data.get(key)
        if items is None:
            items = []
        if isinstance(items, str | bytes | Mapping) or not isinstance(items, list | tuple):
            raise WeChatInvalidArgument(None, f"{where}.{key} must be a list.")
        if len(items) < spec.min_items:
            raise WeChatInvalidArgument(
                None, f"{where}.{key} needs at least {spec.min_items} item(s); it has {len(items)}."
            )
        if spec.max_items is not None and len(items) > spec.max_items:
            reason = f": {spec.why_max}" if spec.why_max else ""
            raise WeChatInvalidArgument(
                None,
                f"{where}.{key} may hold at most {spec.max_items} item(s); it has "
                f"{len(items)}{reason}.",
            )
        result[key] = [
            _normalise(spec.shape, item, f"{where}.{key}[{index}]")
            for index, item in enumerate(items)
        ]
    return result


# ------------------------------------------------------------------ media

# Temporary media (POST /cgi-bin/media/upload). WeChat's page contradicts itself on
# images: its notes say 2 MB, its list 10 MB (and older copies of it 2 MB). The
# stricter reading wins: a file accepted here is accepted under either, and a send
# failing later in the worker, after the person moved on, is worse than a clear
# refusal now.
MEDIA_TYPES: tuple[str, ...] = ("image", "voice", "video", "thumb")
MEDIA_LIFETIME_SECONDS = 3 * 86400
MAX_VOICE_SECONDS = 60


@dataclass(frozen=True)
class MediaRule:
    """What WeChat accepts for one media type."""

    max_bytes: int
    formats: tuple[str, ...]  # sniffed format names, see sniff_format
    shown_formats: str  # for the sentence naming the limit
    shown_size: str


MEDIA_RULES: dict[str, MediaRule] = {
    "image": MediaRule(2 * 1024 * 1024, ("png", "jpeg", "gif"), "PNG, JPEG/JPG or GIF", "2 MB"),
    "voice": MediaRule(2 * 1024 * 1024, ("amr", "mp3"), "AMR or MP3", "2 MB"),
    "video": MediaRule(10 * 1024 * 1024, ("mp4",), "MP4", "10 MB"),
    "thumb": MediaRule(64 * 1024, ("jpeg",), "JPG", "64 KB"),
}

# Permanent-material list types (batchget_material) and the page size of the lists.
MATERIAL_TYPES: tuple[str, ...] = ("image", "voice", "video", "news")
MAX_MATERIALS_PER_PAGE = 20

# format -> Content-Type kfadmin serves it with.
CONTENT_TYPES: dict[str, str] = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "amr": "audio/amr",
    "mp3": "audio/mpeg",
    "mp4": "video/mp4",
}
EXTENSIONS: dict[str, str] = {
    "png": "png", "jpeg": "jpg", "gif": "gif", "amr": "amr", "mp3": "mp3", "mp4": "mp4",
}

# MP3 frame header tables (MPEG-1/2/2.5, layer III), for the frame walk below.
_MP3_BITRATES = {
    1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
# AMR-NB frame sizes in bytes (after the one-byte header) by frame type; 20 ms each.
_AMR_FRAME_BYTES = (12, 13, 15, 17, 19, 20, 26, 31, 5, 6, 5, 5, 0, 0, 0, 0)


def sniff_format(content: bytes) -> str | None:
    """The file format the bytes start with (never the name or a browser's claim)."""
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if content.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if content[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if content.startswith(b"#!AMR\n"):
        return "amr"
    if content[4:8] == b"ftyp":
        return "mp4"
    if content.startswith(b"ID3") or _mp3_frame(content, 0) is not None:
        return "mp3"
    return None


def _mp3_frame(content: bytes, pos: int) -> tuple[int, float] | None:
    """(frame length, seconds) of the layer III frame at ``pos``, or None."""
    header = content[pos : pos + 4]
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version = (header[1] >> 3) & 3  # 3 MPEG-1, 2 MPEG-2, 0 MPEG-2.5
    layer = (header[1] >> 1) & 3  # 1 = layer III
    bitrate_index, rate_index = header[2] >> 4, (header[2] >> 2) & 3
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    bitrate = _MP3_BITRATES[1 if version == 3 else 2][bitrate_index] * 1000
    rate = _MP3_RATES[version][rate_index]
    samples = 1152 if version == 3 else 576
    length = samples // 8 * bitrate // rate + ((header[2] >> 1) & 1)
    return (length, samples / rate) if length > 4 else None


def voice_seconds(content: bytes) -> float | None:
    """How long an AMR or MP3 file plays, from its frames; None when unreadable."""
    fmt = sniff_format(content)
    if fmt == "amr":
        pos, frames = 6, 0
        while pos < len(content):
            pos += 1 + _AMR_FRAME_BYTES[(content[pos] >> 3) & 0x0F]
            frames += 1
        return frames * 0.02
    if fmt == "mp3":
        pos = 0
        if content.startswith(b"ID3") and len(content) >= 10:
            size = content[6:10]
            pos = 10 + ((size[0] << 21) | (size[1] << 14) | (size[2] << 7) | size[3])
        seconds = 0.0
        while pos < len(content):
            frame = _mp3_frame(content, pos)
            if frame is None:
                break
            pos += frame[0]
            seconds += frame[1]
        return seconds
    return None


def media_problem(media_type: str, content: bytes) -> str | None:
    """Why WeChat would refuse ``content`` as temporary media of ``media_type``,
    naming the limit; None when it is fine."""
    rule = MEDIA_RULES.get(media_type)
    if rule is None:
        return f"media_type must be one of {', '.join(MEDIA_TYPES)} (got {media_type!r})."
    if not content:
        return "The file is empty."
    fmt = sniff_format(content)
    if fmt not in rule.formats:
        return (
            f"The file is not a format WeChat accepts for {media_type}: it must be "
            f"{rule.shown_formats}."
        )
    if len(content) > rule.max_bytes:
        return (
            f"The file is {len(content)} bytes; WeChat accepts at most {rule.shown_size} "
            f"for {media_type}."
        )
    if media_type == "voice":
        seconds = voice_seconds(content)
        if seconds is not None and seconds > MAX_VOICE_SECONDS:
            return (
                f"The recording plays {seconds:.0f} seconds; WeChat accepts voice of at "
                f"most {MAX_VOICE_SECONDS} seconds."
            )
    return None


def validate_media(media_type: str, content: bytes) -> None:
    problem = media_problem(media_type, content)
    if problem:
        raise WeChatInvalidArgument(None, problem)


def validate_material_page(material_type: str | None, offset: Any, count: Any) -> None:
    if material_type is not None and material_type not in MATERIAL_TYPES:
        raise WeChatInvalidArgument(
            None,
            f"material_type must be one of {', '.join(MATERIAL_TYPES)} (got {material_type!r}).",
        )
    for label, value, low, high in (
        ("offset", offset, 0, None),
        ("count", count, 1, MAX_MATERIALS_PER_PAGE),
    ):
        for check in (_is_int, _between(low, high)):
            problem = check(value)
            if problem:
                raise WeChatInvalidArgument(None, f"{label} {problem}.")
