"""Project-wide middleware: flash messages on htmx answers, and a request body cap.

Flash messages: a full page shows the messages region (base.html). An htmx answer
swaps only its region, so the messages region rides along as an out-of-band swap:

- on the answer to an action (any method but GET and HEAD) always, even when empty,
  so what this action says replaces what an earlier one said: an old "saved" never
  stays above a new error shown in a form;
- on other htmx answers (polls, regions loading) only when messages are pending, so
  a poll leaves the messages on screen alone.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

# Answers that send the browser elsewhere: the messages are for the next page.
_ELSEWHERE = ("HX-Redirect", "HX-Location", "HX-Refresh")


class HtmxMessagesMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        htmx = getattr(request, "htmx", None)
        if not htmx or htmx.history_restore_request or not _is_html(response):
            return response
        if any(header in response for header in _ELSEWHERE):
            return response
        action = request.method not in ("GET", "HEAD")
        if not action and not len(messages.get_messages(request)):
            return response
        if b'id="messages"' in response.content:
            return response  # the answer already holds the region (a whole page)
        response.content += render_to_string("_messages.html", {"oob": True}, request).encode(response.charset)
        return response


def _is_html(response: HttpResponse) -> bool:
    return (
        response.status_code == 200
        and not response.streaming
        and response.get("Content-Type", "").startswith("text/html")
    )


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
