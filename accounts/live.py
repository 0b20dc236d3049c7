"""Versions of what live regions show: an unchanged poll answers 204 from one cache read.

Every polled region of the pages (the overview, the waiting queue, the sessions board,
the auto-assignment status, the agents table and card, the inbox, the session box,
the timeline, the alerts, the export jobs) is built from a few *data domains* of one
official account: its agents, its sessions, its message archive, its sync status, one
customer's conversation... Each domain has a version in the cache
(`kfadmin:live:v:<account>:<domain>`), and whoever changes the domain's data bumps it
after the commit (`live_bump`, deferred with `transaction.on_commit`): the syncs only
when they wrote something, the callback receiver and the live tail through
`messaging.archive.archive_changed`, the session changes through
`sessions_app.transitions`, and every audited write (`accounts.audit`) bumps the
account's `all` domain, which every region includes.

A region renders a *token*: a digest of the versions of its domains and of what the
fragment varies by (role, language, options), and the time it was made. The poll
sends it back (`?v=`); `live_poll` reads the versions again (one `get_many` after
the access check, no database query) and answers 204 No Content when the digest is
the same, which htmx takes as "leave the region alone". The versions are read
*before* the data, so a change that commits in between is shown with the older
token and rendered once more, never the other way round.

What the passage of time changes (a wait turning long, a sync becoming late, a new
day's counters, a reply window closing) bumps nothing: a token older than
`LIVE_RECHECK_SECONDS` is always answered with a full render, and the relative
times ("waiting 6 minutes") are `<time>` elements that static/js/live-times.js
advances in the browser.

Without a shared cache (`CACHE_URL` unset) each process has its own locmem cache and
never sees the bumps of the Celery worker or of other web processes: a 204 could then
hide a change, so `LIVE_VERSIONS` (default: on exactly when the cache is shared) is
off and every poll renders, as before. A version key that is missing (never bumped,
or evicted from Redis) is created with a random start, so a token made before an
eviction never matches again.

A rendered fragment is also kept for `FRAGMENT_CACHE_SECONDS` (2 s by default, 0
turns it off) under its digest, and handed to whoever polls the same region at the
same versions: same official account, domains, language and variant. It is not
stored when it carries anything personal: a flash message, a CSRF token (a form), or
an `HX-Trigger`.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from collections.abc import Callable, Iterable

from django.conf import settings
from django.contrib import messages
from django.core.cache import cache
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django_htmx.middleware import HtmxDetails

from accounts.access import AccountContext

_VERSION_KEY = "kfadmin:live:v:{account_id}:{domain}"
_FRAGMENT_KEY = "kfadmin:live:fragment:{name}:{digest}"
# Response headers worth keeping with the cached body (the rest Django adds anew).
_KEPT_HEADERS = ("Content-Type", "Vary")

# The domains of an account's data; a customer's conversation is `conversation_domain(openid)`.
ALL = "all"  # every audited write: each region depends on it
AGENTS = "agents"  # the agents' rows: presence, load, names, bindings
SESSIONS = "sessions"  # sessions (waiting, open, closed) and the customers listed with them
MESSAGES = "messages"  # the message archive of the whole account
SYNC = "sync"  # the sync jobs' status (failing or not)
AUTO_ASSIGN = "auto-assign"  # the auto-assignment switch and its last run
EXPORTS = "exports"  # export jobs
SEEN = "seen"  # who opened which conversation (the inbox's unread counts)


def conversation_domain(openid: str) -> str:
    """One customer's messages and session (the session box, the timeline): keyed by
    the openid, which the poll's URL names, so checking it needs no database read."""
    return f"conversation:{hashlib.blake2b(openid.encode(), digest_size=8).hexdigest()}"


def seen_domain(user_id: int) -> str:
    """Which conversations one person opened (their inbox's unread counts)."""
    return f"{SEEN}:{user_id}"


def _key(account_id: int, domain: str) -> str:
    return _VERSION_KEY.format(account_id=account_id, domain=domain)


def live_bump(account_id: int, *domains: str) -> None:
    """The account's data in `domains` changed: regions showing it render on their
    next poll. Deferred to the commit, so no token is made for the uncommitted past."""
    if domains:
        transaction.on_commit(functools.partial(live_bump_now, account_id, tuple(dict.fromkeys(domains))))


def live_bump_now(account_id: int, domains: Iterable[str]) -> None:
    for domain in domains:
        key = _key(account_id, domain)
        try:
            cache.incr(key)
        except ValueError:  # not set yet (or evicted): any fresh start differs from every old token
            if not cache.add(key, _fresh_start(), timeout=None):
                cache.incr(key)


def live_changed(*, account_id: int) -> None:
    """Anything of the account may have changed (an audited write)."""
    live_bump(account_id, ALL)


def _fresh_start() -> int:
    return secrets.randbits(40)


def live_enabled() -> bool:
    return bool(settings.LIVE_VERSIONS)


class Region:
    """A polled region: the domains of one account it shows and what else it varies by."""

    def __init__(self, ctx: AccountContext, name: str, domains: Iterable[str], variant: str = "") -> None:
        self.name = name
        self.account_id = ctx.account.pk
        self.domains = tuple(dict.fromkeys((ALL, *domains)))
        self.variant = f"{name}|{self.account_id}|{variant}|{translation.get_language()}"

    def _keys(self) -> list[str]:
        return [_key(self.account_id, d) for d in self.domains]

    def _digest(self, versions: Iterable[object]) -> str:
        text = "|".join([self.variant, *map(str, versions)])
        return hashlib.blake2b(text.encode(), digest_size=9).hexdigest()

    def current_digest(self) -> str | None:
        """The digest of the versions now; None if one is missing (not answerable)."""
        keys = self._keys()
        found = cache.get_many(keys)
        if len(found) < len(keys):
            return None
        return self._digest(found[k] for k in keys)

    def digest_for_render(self) -> str:
        """The versions a render about to read its data shows (read first: see above)."""
        keys = self._keys()
        found = cache.get_many(keys)
        for key in keys:
            if key not in found:
                cache.add(key, _fresh_start(), timeout=None)
                found[key] = cache.get(key)
        return self._digest(found[k] for k in keys)

    def unchanged(self, request: HttpRequest) -> bool:
        """The poll's `?v=` token still describes what the region shows now."""
        if not live_enabled() or not _is_htmx(request):
            return False
        digest, _, issued = request.GET.get("v", "").partition(".")
        if not digest or not issued.isdigit():
            return False
        age = time.time() - int(issued)
        if not -5 <= age < settings.LIVE_RECHECK_SECONDS:
            return False
        # Pending flash messages ride along with the fragment: render them for this user.
        if len(messages.get_messages(request)):
            return False
        return self.current_digest() == digest


def token(digest: str) -> str:
    return f"{digest}.{int(time.time())}"


def _is_htmx(request: HttpRequest) -> bool:
    htmx: HtmxDetails | None = getattr(request, "htmx", None)
    return htmx is not None and bool(htmx) and request.method == "GET" and bool(htmx.target)


def _is_poll(request: HttpRequest) -> bool:
    """The region asks for itself (htmx sends `HX-Trigger` equal to `HX-Target`): a
    click that changes what it shows (another agent, a page) always renders afresh."""
    htmx: HtmxDetails | None = getattr(request, "htmx", None)
    return _is_htmx(request) and htmx is not None and htmx.trigger == htmx.target


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


def not_modified() -> HttpResponse:
    return HttpResponse(status=204)


def live_poll(request: HttpRequest, region: Region, build: Callable[[str], HttpResponse]) -> HttpResponse:
    """204 when the poll's token is current; else `build(token)` (the token goes into
    the region's poll URL), or a copy of it made at the same versions less than
    FRAGMENT_CACHE_SECONDS ago."""
    if region.unchanged(request):
        return not_modified()
    digest = region.digest_for_render()
    seconds = settings.FRAGMENT_CACHE_SECONDS
    if seconds <= 0 or not _is_poll(request) or len(messages.get_messages(request)):
        return build(token(digest))
    key = _FRAGMENT_KEY.format(name=region.name, digest=digest)
    stored = cache.get(key)
    if stored is not None:
        content, headers = stored
        response = HttpResponse(content)
        for header, value in headers:
            response[header] = value
        return response
    response = build(token(digest))
    if _cacheable(request, response):
        headers = [(h, response[h]) for h in _KEPT_HEADERS if response.has_header(h)]
        cache.set(key, (response.content, headers), seconds)
    return response
