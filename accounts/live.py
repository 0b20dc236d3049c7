"""The short shared cache of polled fragments, and the version that invalidates it.

Live regions (the overview, the waiting queue, the sessions board) are polled every
few seconds by everyone who has the page open, and most polls find nothing changed.
A rendered fragment is kept for `FRAGMENT_CACHE_SECONDS` (2 s by default, 0 turns
the cache off) and handed to everyone who would see exactly the same thing: same
official account, role, kf account, language and view options.

Two things keep it honest:

- Every audited write to an account (assign, close, transfer, agent changes, sends,
  "sync now"; see `accounts.audit.audit_event_record`) bumps the account's *live
  version*, which is part of every key: the person who just closed a session sees it
  gone on the very next refresh, not up to two seconds later.
- What a sync or the callback receiver brings in appears within the cache lifetime,
  well inside the 5 s polling interval and far below the 15 s sync interval.

Only polls use it: requests whose triggering element is the region itself (htmx sends
`HX-Trigger` equal to `HX-Target`). A click that changes what a region shows (another
agent, a page) always gets a fresh render, so its answer is never older than the copy
on screen (static/js/fresh.js keeps the freshest). A fragment is not stored when it
carries anything personal: a flash message, a CSRF token (a form), or an `HX-Trigger`. Without a shared cache (`CACHE_URL` unset, so each
process has its own), a version bump reaches only the process that made it; the
others catch up within the cache lifetime.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django_htmx.middleware import HtmxDetails

from accounts.access import AccountContext

_VERSION_KEY = "kfadmin:live:version:{account_id}"
_FRAGMENT_KEY = "kfadmin:live:fragment:{name}:{account_id}:{variant}:{language}"
# Response headers worth keeping with the cached body (the rest Django adds anew).
_KEPT_HEADERS = ("Content-Type", "Vary")


def live_version(*, account_id: int) -> int:
    return cache.get(_VERSION_KEY.format(account_id=account_id), 0)


def live_changed(*, account_id: int) -> None:
    """The account's live data changed: no cached fragment of the old state is served
    again. Deferred to the commit, so nobody caches a render of the uncommitted past."""
    transaction.on_commit(functools.partial(live_version_bump, account_id))


def live_version_bump(account_id: int) -> None:
    key = _VERSION_KEY.format(account_id=account_id)
    try:
        cache.incr(key)
    except ValueError:  # not set yet (or evicted): start at 1, unless another process just did
        if not cache.add(key, 1, timeout=None):
            cache.incr(key)


def _is_poll(request: HttpRequest) -> bool:
    htmx: HtmxDetails | None = getattr(request, "htmx", None)
    return htmx is not None and bool(htmx) and request.method == "GET" and bool(htmx.target) and htmx.trigger == htmx.target


def _cacheable(request: HttpRequest, response: HttpResponse) -> bool:
    return (
        response.status_code == 200
        and not response.streaming
        and not response.has_header("HX-Trigger")
        and not response.cookies
        # get_token() ran: the answer embeds this user's CSRF token (a form), which
        # must never be handed to another user.
        and not request.META.get("CSRF_COOKIE_NEEDS_UPDATE")
    )


def fragment_cached(
    request: HttpRequest,
    ctx: AccountContext,
    name: str,
    build: Callable[[], HttpResponse],
    *,
    options: str = "",
) -> HttpResponse:
    """The response `build()` makes, or a copy of it made for the same viewers less
    than FRAGMENT_CACHE_SECONDS ago. `options` names whatever else the fragment
    depends on (a selected agent, a page)."""
    seconds = settings.FRAGMENT_CACHE_SECONDS
    # Pending flash messages ride along with the fragment: render them for this user.
    if seconds <= 0 or not _is_poll(request) or len(messages.get_messages(request)):
        return build()
    version_key = _VERSION_KEY.format(account_id=ctx.account.pk)
    key = _FRAGMENT_KEY.format(
        name=name,
        account_id=ctx.account.pk,
        variant=f"{ctx.role}.{ctx.agent.pk if ctx.agent else ''}.{options}",
        language=translation.get_language(),
    )
    # One round trip for both: the copy is good only if made at the current version.
    found = cache.get_many([version_key, key])
    version = found.get(version_key, 0)
    stored = found.get(key)
    if stored is not None and stored[0] == version:
        _, content, headers = stored
        response = HttpResponse(content)
        for header, value in headers:
            response[header] = value
        return response
    response = build()
    if _cacheable(request, response):
        headers = [(h, response[h]) for h in _KEPT_HEADERS if response.has_header(h)]
        cache.set(key, (version, response.content, headers), seconds)
    return response
