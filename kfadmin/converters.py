"""URL converters shared by the apps' URL patterns."""

from __future__ import annotations

from urllib.parse import quote, unquote

from django.urls import register_converter


class OpenidConverter:
    """An openid as one path segment.

    WeChat's openids are [A-Za-z0-9_-] and come out unchanged; anything else already
    in the archive (the callback receiver refuses new ones) is percent-encoded, so
    `reverse()` never fails on it and a page listing it does not answer 500.
    """

    regex = "[^/]+"

    def to_python(self, value: str) -> str:
        return unquote(value)

    def to_url(self, value: str) -> str:
        return quote(str(value), safe="")


register_converter(OpenidConverter, "openid")
