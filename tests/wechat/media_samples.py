"""Small, real media files made in memory for the media tests (no downloads)."""

from __future__ import annotations

import io
import struct

from PIL import Image


def png(width: int = 8, height: int = 8, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(width: int = 8, height: int = 8, color: tuple[int, int, int] = (40, 120, 200), quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (4, 4), 1).save(buffer, "GIF")
    return buffer.getvalue()


def amr(seconds: float = 1.0) -> bytes:
    """AMR-NB of silence: 12.2 kbit/s frames (header 0x3C, 31 bytes), 20 ms each."""
    frames = int(seconds / 0.02)
    return b"#!AMR\n" + (b"\x3c" + bytes(31)) * frames


def mp3(seconds: float = 1.0) -> bytes:
    """MPEG-1 layer III frames at 128 kbit/s, 44.1 kHz: 417 bytes, 26.1 ms each."""
    frame = b"\xff\xfb\x90\x00" + bytes(413)
    return frame * max(1, round(seconds / (1152 / 44100)))


def mp4(size: int = 2048) -> bytes:
    """An ISO-BMFF file's start: an ftyp box then filler (enough for the sniffing
    WeChat's limits need; not a playable film)."""
    ftyp = b"isom" + struct.pack(">I", 512) + b"isomiso2mp41"
    box = struct.pack(">I", 8 + len(ftyp)) + b"ftyp" + ftyp
    mdat = struct.pack(">I", size) + b"mdat" + bytes(size - 8)
    return box + mdat
