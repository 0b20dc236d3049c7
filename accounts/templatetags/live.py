"""The poll URL of a live region carries the token of what it shows (accounts/live.py).

    hx-get="{% live_url queue_url %}"                  (the token in `live_token`)
    hx-get="{% live_url inbox_url "inbox_token" %}"   (the token in `inbox_token`)

Without a token (a fragment rendered outside its poll) the URL is left as it is.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.http import urlencode

register = template.Library()


@register.simple_tag(takes_context=True)
def live_url(context: Any, url: str, token_name: str = "live_token") -> str:
    """`url` with `v=<token>` added."""
    token = context.get(token_name)
    if not token:
        return url
    return f"{url}{'&' if '?' in url else '?'}{urlencode({'v': token})}"
