"""Project-wide middleware: a request body cap."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _


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
