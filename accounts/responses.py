"""The one way a page view answers: the whole page, or for htmx the region it swaps.

Modelled on django-htmx-patterns' `for_htmx`: one URL serves a page and its
fragments, and this module alone decides which one a request gets. Every answer

- shows times in the official account's time zone;
- carries `Vary: HX-Request, HX-Target, HX-History-Restore-Request`, since the same
  URL answers differently by those headers;
- for a fragment, brings the flash messages along as an out-of-band swap of
  `templates/_messages.html`: after an action (any method but GET and HEAD) always,
  even when empty, so what this action says replaces what an earlier one said; after
  a poll or a region loading only when messages are pending, so a poll leaves the
  messages on screen alone. A whole page shows them in its own region (base.html).

A history restore (htmx asking again for a page that fell out of its history cache)
gets the whole page, never a fragment: htmx puts the answer in place of <body>.

It lives in the lowest app so that every app (and the project's pages) can use it
without importing upwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django_htmx.http import trigger_client_event
from django_htmx.middleware import HtmxDetails

from accounts.access import AccountContext

VARY = ("HX-Request", "HX-Target", "HX-History-Restore-Request")


def wants_fragment(request: HttpRequest) -> bool:
    """An htmx request for a region; a history restore needs the whole page."""
    htmx: HtmxDetails | None = getattr(request, "htmx", None)
    return htmx is not None and bool(htmx) and not htmx.history_restore_request


def region(request: HttpRequest) -> str | None:
    """The `HX-Target` of a request for a region ("" when htmx names none), or None
    when the request wants the whole page. For views whose regions need different
    reads (a polled region asks only for its own part)."""
    htmx: HtmxDetails | None = getattr(request, "htmx", None)
    if htmx is None or not wants_fragment(request):
        return None
    return htmx.target or ""


def respond(
    request: HttpRequest,
    ctx: AccountContext,
    context: Mapping[str, Any] | None = None,
    *,
    page: str | None = None,
    fragment: str | None = None,
    targets: Mapping[str, str] | None = None,
    trigger: str | None = None,
    status: int = 200,
) -> HttpResponse:
    """The answer to `request`, rendered with `context` (plus `ctx`).

    `page` is the whole page. An htmx request (not a history restore) gets instead
    the fragment `targets` names for its `HX-Target`, else `fragment`; with neither,
    the page. Without a `page` the answer is the fragment, whatever the request: the
    view has sent plain requests elsewhere already (a redirect). `trigger` names an
    `HX-Trigger` event sent with a fragment, telling the page's other regions to
    refresh.
    """
    template = _template_for(request, page=page, fragment=fragment, targets=targets or {})
    full = template == page
    data = {"ctx": ctx, **(context or {})}
    with timezone.override(ctx.account.zone):
        if full:
            response = render(request, template, data, status=status)
        else:
            response = HttpResponse(render_to_string(template, data, request) + _messages_oob(request), status=status)
    patch_vary_headers(response, VARY)
    if trigger and not full:
        trigger_client_event(response, trigger)
    return response


def _template_for(
    request: HttpRequest, *, page: str | None, fragment: str | None, targets: Mapping[str, str]
) -> str:
    target = region(request)
    if target is not None or page is None:
        chosen = targets.get(target or "") or fragment
        if chosen is not None:
            return chosen
    if page is None:
        raise ValueError("respond() needs a page or a fragment to render.")
    return page


def _messages_oob(request: HttpRequest) -> str:
    action = request.method not in ("GET", "HEAD")
    if not action and not len(messages.get_messages(request)):
        return ""
    return render_to_string("_messages.html", {"oob": True}, request)
