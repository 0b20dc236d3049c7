"""Project-level pages: the overview (home) and a health probe."""

import logging

from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from accounts import live
from accounts.access import AccountContext, account_view
from accounts.responses import respond
from kfadmin.overview import overview_get

logger = logging.getLogger(__name__)


@require_GET
@account_view()
def home(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    """The live numbers of the current official account; the page polls its fragment."""

    region = live.Region(ctx, "overview", (live.AGENTS, live.SESSIONS, live.MESSAGES, live.SYNC), variant=ctx.role)

    def build(token: str) -> HttpResponse:
        context = {"overview": overview_get(account=ctx.account), "nav": "home", "live_token": token}
        return respond(request, ctx, context, page="core/home.html", fragment="core/_overview.html")

    return live.live_poll(request, region, build)


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the web process can answer and reach its database, else 503 naming what
    failed (the detail goes to the log, not to an anonymous caller)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        logger.error("Health check: the database does not answer: %s", exc)
        return JsonResponse({"status": "error", "database": "unavailable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})
