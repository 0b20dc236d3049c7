"""Media on the emulator's WeChat: temporary uploads (3 days), permanent materials,
news materials and published articles, with WeChat's upload limits.

Written apart from ``kfadmin.wechat`` (which this package must not import), so the
client's own checks are tested against a second reading of WeChat's rules.
"""

from __future__ import annotations

import io
import random
import struct
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw

MEDIA_LIFETIME = 3 * 86400
UPLOAD_TYPES = ("image", "voice", "video", "thumb")
MATERIAL_TYPES = ("image", "voice", "video", "news")
MATERIAL_PAGE_MAX = 20
VOICE_MAX_SECONDS = 60

# type -> (largest accepted size in bytes, accepted formats). Images: the stricter of
# the two sizes WeChat's page gives (see docs/emulator.md).
UPLOAD_LIMITS: dict[str, tuple[int, tuple[str, ...]]] = {
    "image": (2 * 1024 * 1024, ("png", "jpeg", "gif")),
    "voice": (2 * 1024 * 1024, ("amr", "mp3")),
    "video": (10 * 1024 * 1024, ("mp4",)),
    "thumb": (64 * 1024, ("jpeg",)),
}
CONTENT_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "amr": "audio/amr",
    "mp3": "audio/mpeg",
    "mp4": "video/mp4",
}
EXTENSIONS = {"png": "png", "jpeg": "jpg", "gif": "gif", "amr": "amr", "mp3": "mp3", "mp4": "mp4"}
_AMR_SIZES = (12, 13, 15, 17, 19, 20, 26, 31, 5, 6, 5, 5, 0, 0, 0, 0)


def file_format(data: bytes) -> str | None:
    """The format the bytes are in, by their magic numbers."""
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:6] == b"#!AMR\n":
        return "amr"
    if data[4:8] == b"ftyp":
        return "mp4"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE6 == 0xE2):
        return "mp3"
    return None


def amr_seconds(data: bytes) -> float:
    """Playing time of an AMR-NB file: 20 ms per frame."""
    pos, frames = 6, 0
    while pos < len(data):
        pos += 1 + _AMR_SIZES[(data[pos] >> 3) & 0x0F]
        frames += 1
    return frames * 0.02


@dataclass(slots=True)
class Media:
    """A file WeChat holds under a media_id: uploaded (temporary, 3 days), sent by a
    customer (temporary), or a permanent material."""

    media_id: str
    type: str
    content: bytes
    created_at: float
    permanent: bool = False
    name: str = ""

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES.get(file_format(self.content) or "", "application/octet-stream")

    @property
    def filename(self) -> str:
        ext = EXTENSIONS.get(file_format(self.content) or "", "bin")
        return f"{self.media_id}.{ext}"

    def alive(self, now: float) -> bool:
        return self.permanent or now < self.created_at + MEDIA_LIFETIME


@dataclass(slots=True)
class Article:
    """One article of a news material or a published message."""

    title: str
    digest: str = ""
    author: str = ""
    url: str = ""
    thumb_media_id: str = ""
    thumb_url: str = ""
    content: str = ""

    def to_dict(self, *, with_content: bool = True) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "title": self.title,
            "author": self.author,
            "digest": self.digest,
            "content_source_url": "",
            "thumb_media_id": self.thumb_media_id,
            "thumb_url": self.thumb_url,
            "show_cover_pic": 1,
            "url": self.url,
            "need_open_comment": 0,
            "only_fans_can_comment": 0,
            "is_deleted": False,
        }
        if with_content:
            entry["content"] = self.content
        return entry


@dataclass(slots=True)
class NewsMaterial:
    """A permanent news material (its media_id is what an mpnews message sends) or a
    published message (its article_id is what mpnewsarticle sends)."""

    ident: str
    articles: list[Article]
    created_at: int
    updated_at: int


@dataclass
class MediaStore:
    """One official account's media, materials and published articles."""

    media: dict[str, Media] = field(default_factory=dict)
    news: dict[str, NewsMaterial] = field(default_factory=dict)
    published: dict[str, NewsMaterial] = field(default_factory=dict)
    next_seq: int = 1

    def new_id(self, rng: random.Random, prefix: str) -> str:
        # Real media_ids are 64 characters of [A-Za-z0-9_-]; these stay readable.
        self.next_seq += 1
        tail = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(16))
        return f"{prefix}_{self.next_seq}_{tail}"

    def live(self, media_id: str, now: float) -> Media | None:
        media = self.media.get(media_id)
        return media if media is not None and media.alive(now) else None

    def materials(self, kind: str) -> list[Media]:
        """Permanent materials of one type, newest first (as WeChat lists them)."""
        items = [m for m in self.media.values() if m.permanent and m.type == kind]
        items.sort(key=lambda m: (-m.created_at, m.media_id))
        return items

    def prune(self, now: float) -> None:
        """Forget temporary media long past their 3 days."""
        for media_id in [k for k, m in self.media.items() if not m.permanent and now > m.created_at + 2 * MEDIA_LIFETIME]:
            del self.media[media_id]


# ------------------------------------------------------------- generated files


def image_bytes(color: tuple[int, int, int], *, size: tuple[int, int] = (96, 96), fmt: str = "JPEG", label: str = "") -> bytes:
    """A small picture (a coloured square with a lighter band), made with Pillow."""
    picture = Image.new("RGB", size, color)
    draw = ImageDraw.Draw(picture)
    light = tuple(min(255, c + 70) for c in color)
    draw.rectangle((0, size[1] * 2 // 3, size[0], size[1]), fill=light)
    if label:
        draw.text((6, 6), label, fill=(255, 255, 255))
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **({"quality": 80} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def amr_bytes(seconds: float) -> bytes:
    """AMR-NB silence of ``seconds`` (12.2 kbit/s frames)."""
    return b"#!AMR\n" + (b"\x3c" + bytes(31)) * int(seconds / 0.02)


def mp4_bytes(size: int = 4096) -> bytes:
    """The start of an ISO-BMFF (MP4) file: enough for format checks, not a film."""
    ftyp = b"isom" + struct.pack(">I", 512) + b"isomiso2mp41"
    return struct.pack(">I", 8 + len(ftyp)) + b"ftyp" + ftyp + struct.pack(">I", size) + b"mdat" + bytes(size - 8)
