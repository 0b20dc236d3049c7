"""A small multipart/form-data reader for the avatar upload.

The stdlib ``cgi`` module is deprecated (gone in 3.13), and the upload only needs
"find the part named X and give me its bytes".
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None
    content_type: str
    data: bytes


def _boundary(content_type: str) -> str | None:
    msg = Message()
    msg["content-type"] = content_type
    if msg.get_content_type() != "multipart/form-data":
        return None
    boundary = msg.get_param("boundary")
    return boundary if isinstance(boundary, str) and boundary else None


def parse_form_data(body: bytes, content_type: str) -> list[Part]:
    """All parts of a multipart/form-data body; [] when it is not one."""
    boundary = _boundary(content_type)
    if boundary is None:
        return []
    # Every delimiter is preceded by CRLF except the first; prefixing one makes
    # splitting uniform and keeps boundary-like bytes inside content intact.
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    chunks = (b"\r\n" + body).split(delimiter)
    parts: list[Part] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # closing delimiter
        if chunk.startswith(b"\r\n"):
            chunk = chunk[2:]
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            continue
        headers = BytesHeaderParser().parsebytes(head + b"\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        filename = headers.get_param("filename", header="content-disposition")
        parts.append(
            Part(
                name=name,
                filename=filename if isinstance(filename, str) else None,
                content_type=headers.get("content-type", "application/octet-stream"),
                data=data,
            )
        )
    return parts
