"""Project-wide middleware: logins asked for in a way htmx follows, and a request body cap."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails


class HtmxLoginRequiredMiddleware(LoginRequiredMiddleware):
    """Django's LoginRequiredMiddleware, answering htmx the way htmx understands.

    A logged-out plain request is redirected to the login page (302). A logged-out
    htmx request (a poll whose session expired, a click in a page left open) would
    follow that redirect and swap the login page into its region; it gets
    `HX-Redirect` instead, so the whole page goes to the login page, which returns to
    the page the browser was on (`HX-Current-URL`), not to the fragment's URL. A
    history restore puts its answer in place of <body> and reads no HX- headers: it
    gets the plain redirect, like a page load.
    """

    # Django's stub promises a redirect (302); an htmx request gets HX-Redirect (a 200).
    def handle_no_permission(  # type: ignore[override]
        self, request: HttpRequest, view_func: Callable
    ) -> HttpResponse:
        htmx: HtmxDetails | None = getattr(request, "htmx", None)
        if not htmx or htmx.history_restore_request:
            return super().handle_no_permission(request, view_func)
        login = redirect_to_login(
            _current_path(request, htmx),
            resolve_url(self.get_login_url(view_func)),
            self.get_redirect_field_name(view_func),
        )
        return HttpResponseClientRedirect(login["Location"])


def _current_path(request: HttpRequest, htmx: HtmxDetails) -> str:
    """The path (and query) of the page the browser shows, when htmx says so and it is
    on this site; else the requested one."""
    current = htmx.current_url or ""
    if current and url_has_allowed_host_and_scheme(
        current, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        parts = urlsplit(current)
        return parts.path + (f"?{parts.query}" if parts.query else "")
    return request.get_full_path()


class RequestBodyLimitMiddleware:
    """Answer 413 to a request whose body is larger than REQUEST_BODY_MAX_BYTES.

    Django caps form fields (DATA_UPLOAD_MAX_MEMORY_SIZE) but not uploaded files, which
    it streams to a temporary file of any size. Django reads no more than the declared
    Content-Length, so checking that header bounds what is read.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self.limit: int = settings.REQUEST_BODY_MAX_BYTES

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > self.limit:
            return HttpResponse(
                _("The request is too large: at most %(mb)s MB can be sent at once.")
                % {"mb": f"{self.limit / (1024 * 1024):g}"},
                status=413,
                content_type="text/plain; charset=utf-8",
            )
        return self.get_response(request)
