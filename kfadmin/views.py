"""Project-level pages: the overview (home) and a health probe."""

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from accounts.access import AccountContext, account_view
from accounts.live import fragment_cached
from accounts.selectors import overview_get
from accounts.views import respond


@require_GET
@account_view()
def home(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    """The live numbers of the current official account; the page polls its fragment."""

    def build() -> HttpResponse:
        context = {"overview": overview_get(account=ctx.account), "nav": "home"}
        return respond(request, ctx, "core/home.html", "core/_overview.html", context)

    return fragment_cached(request, ctx, "overview", build)


@login_not_required
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})
