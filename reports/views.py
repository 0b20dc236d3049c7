"""The reports page, its CSV downloads, and an agent's presence timeline."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.http import require_GET

from accounts.access import AUDITOR, SUPERVISOR, AccountContext, account_view
from accounts.models import Agent
from accounts.responses import respond
from messaging.exports import EchoWriter, csv_safe
from reports.forms import PeriodForm
from reports.selectors import period_default, presence_get, report_get, rollups_pending
from reports.tables import TABLES, presence_table, report_table


def _period_form(request: HttpRequest, ctx: AccountContext) -> PeriodForm:
    form = PeriodForm(request.GET or None, default=period_default(account=ctx.account))
    form.is_valid()
    return form


@require_GET
@account_view(SUPERVISOR, AUDITOR)
def reports(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    form = _period_form(request, ctx)
    period = form.period
    report = report_get(account=ctx.account, period=period)
    previous = report_get(account=ctx.account, period=period.previous(), detail=False)
    context = {
        "form": form,
        "report": report,
        "previous": previous,
        "before": {a.worker: a for a in previous.agents},
        "query": f"first={period.first.isoformat()}&last={period.last.isoformat()}",
        "by_hour": period.days <= 7,
        "hours": range(24),
        "pending": rollups_pending(account=ctx.account),
    }
    return respond(request, ctx, context, page="reports/reports.html")


def _csv(columns: list[str], rows: Iterable[list], filename: str) -> StreamingHttpResponse:
    def lines() -> Iterator[str]:
        writer = csv.writer(EchoWriter())
        # The history export's BOM (Excel reads UTF-8) and formula guard.
        yield "\ufeff" + writer.writerow(columns)
        for row in rows:
            yield writer.writerow([csv_safe(str(value)) for value in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@account_view(SUPERVISOR, AUDITOR)
def reports_csv(request: HttpRequest, ctx: AccountContext, table: str) -> StreamingHttpResponse:
    if table not in TABLES:
        raise Http404("No such table")
    period = _period_form(request, ctx).period
    columns, rows = report_table(report_get(account=ctx.account, period=period), table)
    return _csv(columns, rows, f"kfadmin-{table}-{period.first:%Y%m%d}-{period.last:%Y%m%d}.csv")


@require_GET
@account_view(SUPERVISOR, AUDITOR)
def presence(request: HttpRequest, ctx: AccountContext, pk: int) -> HttpResponse | StreamingHttpResponse:
    agent = get_object_or_404(Agent, pk=pk, official_account=ctx.account)
    form = _period_form(request, ctx)
    timeline = presence_get(agent=agent, period=form.period)
    if request.GET.get("format") == "csv":
        columns, rows = presence_table(timeline)
        return _csv(columns, rows, f"kfadmin-presence-{agent.prefix}-{form.period.first:%Y%m%d}.csv")
    context = {
        "form": form,
        "presence": timeline,
        "query": f"first={form.period.first.isoformat()}&last={form.period.last.isoformat()}",
        "now": timezone.now(),
    }
    return respond(request, ctx, context, page="reports/presence.html")
