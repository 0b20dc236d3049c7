"""An avatar claiming too many pixels is refused before its pixels are decoded."""

from __future__ import annotations

import io
import struct

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, JpegImagePlugin

from accounts.forms import AVATAR_MAX_PIXELS, AgentAvatarForm

pytestmark = [
    pytest.mark.usefixtures("english_default"),
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
]


def jpeg_claiming(width: int, height: int) -> bytes:
    """A small real JPEG whose frame header claims `width`×`height` (as a crafted file does)."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (240, 120, 20)).save(buffer, "JPEG")
    content = bytearray(buffer.getvalue())
    sof = content.index(b"\xff\xc0")
    # FFC0, length (2 bytes), precision (1), then height and width (2 bytes each).
    content[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(content)


def form_for(content: bytes) -> AgentAvatarForm:
    upload = SimpleUploadedFile("face.jpg", content, content_type="image/jpeg")
    return AgentAvatarForm(data={}, files={"avatar": upload})


@pytest.fixture
def decoded(monkeypatch) -> list[tuple[int, int]]:
    """The sizes of the JPEGs whose pixels were decoded."""
    seen: list[tuple[int, int]] = []
    original = JpegImagePlugin.JpegImageFile.load

    def load(self):
        seen.append(self.size)
        return original(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", load)
    return seen


@pytest.mark.parametrize(("width", "height"), [(12000, 12000), (4097, 4096), (65000, 65000)])
def test_a_jpeg_over_the_pixel_cap_is_refused_without_decoding(decoded, width, height):
    form = form_for(jpeg_claiming(width, height))
    decoded.clear()  # making the file decoded its 16×16 pixels

    assert not form.is_valid()
    assert "more pixels than 4096×4096" in form.errors["avatar"][0]
    assert decoded == []


def test_a_jpeg_at_the_cap_is_decoded(decoded):
    form = form_for(jpeg_claiming(4096, 4096))
    decoded.clear()

    form.is_valid()

    assert decoded == [(4096, 4096)]


def test_pillow_refuses_larger_images_everywhere_in_the_process():
    assert Image.MAX_IMAGE_PIXELS == AVATAR_MAX_PIXELS
