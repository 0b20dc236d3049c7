"""One customer's conversation (timeline, reply window, composer, typing), the send
status fragment, the history search, its exports and the printable transcript.

Agents see only customers they served (or who are waiting in the queue) and send
only as themselves; auditors read everything of their account and send nothing.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import live as versions
from accounts import selectors as account_selectors
from accounts.access import AGENT, AUDITOR, SUPERVISOR, AccountContext, account_view
from accounts.models import Agent, OfficialAccount
from accounts.responses import region, respond, wants_fragment
from accounts.sentences import sentence_translate, wechat_error_message
from kfadmin.wechat import WeChatError
from messaging import selectors
from messaging.exports import export_content_type, export_lines
from messaging.forms import (
    HistoryFilterForm,
    MenuForm,
    PayloadForm,
    TypingForm,
    composer_form_class,
)
from messaging.media import MediaRefused, library_search, library_synced_at, media_file_for_viewer
from messaging.models import ExportJob, LibraryItem, MessageRecord, OutboundMessage
from messaging.selectors import (
    KINDS,
    RecordFilter,
    records_count,
    records_iter_export,
    records_iter_export_rows,
    records_search,
)
from messaging.services import (
    EXPORT_FILE_MISSING,
    SendAgainRefused,
    SendRefused,
    conversation_seen_mark,
    conversation_watch,
    conversation_watch_soon,
    export_job_create,
    export_job_download_record,
    export_job_path,
    history_export_record,
    outbound_queue,
    outbound_resend,
    typing_send,
)
from sessions_app import selectors as session_selectors
from sessions_app.models import Customer, KfSession
from sessions_app.views import POLL_SECONDS, as_of

HISTORY_PAGE_SIZE = 50
# The conversation's regions by HX-Target; any other htmx request gets the timeline.
CONVERSATION_REGIONS = {
    "conversation-session": "messaging/_session_box.html",
    "composer": "messaging/_composer.html",
}
# Moving to another conversation from the inbox: the page, of which htmx keeps the
# conversation region (hx-select), so the two never differ.
CONVERSATION_SWITCH = "conversation-region"
TIMELINE_CHANGED = "timelineChanged"
TRANSCRIPT_LIMIT = 5000


# ------------------------------------------------------------------ helpers


def _conversation_customer(ctx: AccountContext, openid: str) -> Customer | None:
    """The customer (None when only the archive knows the openid); 404 when the
    account has no trace of them, or an agent has no business with them."""
    customer = session_selectors.customer_get(account=ctx.account, openid=openid)
    if customer is None and not selectors.customer_known(account=ctx.account, openid=openid):
        raise Http404("No such customer")
    if ctx.is_agent:
        if ctx.agent is None:
            raise Http404("No kf account linked")
        if not selectors.customer_open_to_agent(
            customer=customer, openid=openid, account=ctx.account, agent=ctx.agent
        ):
            raise Http404("Not your customer")
    return customer


def _sender_only(ctx: AccountContext):
    """Agents send only as themselves."""
    if ctx.is_agent:
        if ctx.agent is None:
            raise PermissionDenied("Your account is not linked to a kf account.")
        return ctx.agent
    return None


def _composer_form(
    ctx: AccountContext, customer: Customer | None, msgtype: str | None, live: KfSession | None, **kwargs
) -> PayloadForm:
    serving = live.agent if live is not None and live.state == KfSession.State.OPEN else None
    return composer_form_class(msgtype)(
        account=ctx.account, only=_sender_only(ctx) if ctx.can_send else None, preferred=(serving, ctx.agent), **kwargs
    )


def _library_pick(request: HttpRequest) -> dict:
    """The library item the person chose in the picker (?library=<id>), as the
    composer's initial choice."""
    picked = request.GET.get("library", "")[:256]
    return {"library": picked, "media_id": picked, "article_id": picked} if picked else {}


def _session_box_context(openid: str, customer: Customer | None, account: OfficialAccount) -> dict:
    """What the session and reply-window box shows, stamped with the time it was read
    (data-as-of, see static/js/fresh.js), with up to when kfadmin holds WeChat's
    records (the box never presents a stale copy as fact)."""
    stamp = as_of()
    if customer is not None:
        # Read after the stamp: the caller's copy may predate a send the worker has
        # delivered meanwhile, and a fresh stamp on stale data would win over the truth.
        customer.refresh_from_db(fields=Customer.WINDOW_FIELDS)
    return {
        "as_of": stamp,
        "openid": openid,
        "customer": customer,
        "live": session_selectors.live_session_for(customer=customer) if customer is not None else None,
        "window": selectors.customer_window(customer=customer),
        "conversation_url": reverse("messaging:conversation", args=[openid]),
        "now": timezone.now(),
        "freshness": selectors.records_freshness(account=account),
        "tail_seconds": settings.SYNC_TAIL_SECONDS,
    }


def _conversation_variant(ctx: AccountContext, openid: str) -> str:
    """An agent's token is theirs: whether the conversation is open to them is part of
    what it vouches for (any change of the customer's sessions bumps the version, and
    the next poll checks their right again)."""
    return f"{ctx.role}.{ctx.agent.pk if ctx.is_agent and ctx.agent else ''}.{openid}"


def _timeline_region(ctx: AccountContext, openid: str) -> versions.Region:
    return versions.Region(ctx, "timeline", (versions.conversation_domain(openid),), variant=_conversation_variant(ctx, openid))


def _session_box_region(ctx: AccountContext, openid: str) -> versions.Region:
    return versions.Region(
        ctx, "conversation-session", (versions.conversation_domain(openid), versions.AGENTS),
        variant=_conversation_variant(ctx, openid),
    )


def _conversation_context(
    request: HttpRequest, ctx: AccountContext, openid: str, customer: Customer | None, *, form: PayloadForm | None = None
) -> dict:
    # The regions' tokens are read before their data (accounts/live.py).
    tokens = {
        "timeline_token": versions.token(_timeline_region(ctx, openid).digest_for_render()),
        "box_token": versions.token(_session_box_region(ctx, openid).digest_for_render()),
    }
    # Taken before the timeline is read: a record arriving in between changes the
    # stamp, so the next poll fetches it rather than being told nothing is new.
    stamp = selectors.timeline_stamp(account=ctx.account, openid=openid, customer=customer)
    box = _session_box_context(openid, customer, ctx.account)
    live = box["live"]
    msgtype = form.msgtype if form is not None else request.GET.get("type")
    if form is None and ctx.can_send:
        form = _composer_form(ctx, customer, msgtype, live, initial=_library_pick(request))
    try:
        at_record = int(request.GET["at"]) if "at" in request.GET else None
    except ValueError:
        at_record = None
    try:
        timeline = selectors.conversation_timeline(
            account=ctx.account, openid=openid, customer=customer,
            before=request.GET.get("before") or None, at_record=at_record,
        )
    except ValueError:
        timeline = selectors.conversation_timeline(account=ctx.account, openid=openid, customer=customer)
    return {
        **box,
        **tokens,
        # Only read when there is no composer: what the note under the timeline says.
        "archived_customer_wrote_at": (
            selectors.customer_last_archived_message_at(account=ctx.account, openid=openid)
            if customer is None and ctx.can_send
            else None
        ),
        "stale_before": selectors.outbound_stale_before(),
        "timeline": timeline,
        "timeline_stamp": stamp,
        "form": form,
        "msgtypes": OutboundMessage.MsgType.choices,
        "current_type": form.msgtype if form is not None else "text",
        "poll_seconds": POLL_SECONDS,
    }


# ------------------------------------------------------------------ conversation


@require_GET
@account_view(SUPERVISOR, AGENT, AUDITOR)
def conversation(request: HttpRequest, ctx: AccountContext, openid: str) -> HttpResponse:
    target = region(request)
    if target in ("timeline", "conversation-session"):
        polled = _timeline_region(ctx, openid) if target == "timeline" else _session_box_region(ctx, openid)
        if polled.unchanged(request):
            # Nothing it shows changed: one cache read, and the tail's watch renewed
            # through the cache (the database is written at most twice a minute).
            conversation_watch_soon(account=ctx.account)
            return versions.not_modified()
    customer = _conversation_customer(ctx, openid)
    # An open conversation keeps the account's live tail running (its poll renews it).
    conversation_watch(account=ctx.account)
    if target == "timeline" and "stamp" in request.GET:
        # The timeline's poll: with nothing new since the copy on screen, answer 204
        # (htmx leaves the page alone) instead of rendering a hundred messages again.
        current = selectors.timeline_stamp(account=ctx.account, openid=openid, customer=customer)
        if request.GET["stamp"] == current:
            return HttpResponse(status=204)
    if target == "composer" and not ctx.can_send:
        raise PermissionDenied("Your role cannot send messages.")
    context = _conversation_context(request, ctx, openid, customer)
    whole = target is None or target == CONVERSATION_SWITCH
    if whole and ctx.can_send:
        # Opening the conversation: what it shows now is seen; the inbox beside it.
        conversation_seen_mark(account=ctx.account, user=request.user, openid=openid)
        context.update(_inbox_context(request, ctx))
    # A refreshed timeline (any region but these) brings the reply window of the
    # same moment along, so the two never disagree about what was sent.
    context["box_oob"] = not whole and target not in CONVERSATION_REGIONS
    return respond(
        request, ctx, context, page="messaging/conversation.html",
        targets={**CONVERSATION_REGIONS, CONVERSATION_SWITCH: "messaging/conversation.html"},
        fragment="messaging/_timeline.html",
    )


@require_POST
@account_view(SUPERVISOR, AGENT)
def seen(request: HttpRequest, ctx: AccountContext, openid: str) -> HttpResponse:
    """The person is reading or answering the conversation (static/js/inbox.js tells
    on a click or a key in it): its messages are no longer unread for them."""
    _conversation_customer(ctx, openid)
    conversation_seen_mark(account=ctx.account, user=request.user, openid=openid)
    return HttpResponse(status=204)


@require_POST
@account_view(SUPERVISOR, AGENT)
def send(request: HttpRequest, ctx: AccountContext, openid: str) -> HttpResponse:
    customer = _conversation_customer(ctx, openid)
    if customer is None:
        raise Http404("kfadmin has not seen this customer write")
    only = _sender_only(ctx)
    form = composer_form_class(request.POST.get("msgtype"))(request.POST, request.FILES, account=ctx.account, only=only)
    menu_action = request.POST.get("menu_action", "")
    if isinstance(form, MenuForm) and menu_action:
        # Adding or removing an option row: show the form again, send nothing.
        form = MenuForm(initial=form.edited_initial(menu_action), account=ctx.account, only=only)
    elif form.is_valid():
        files = form.attachments()
        try:
            outbound = outbound_queue(
                account=ctx.account, customer=customer, agent=form.cleaned_data["as_agent"],
                msgtype=form.msgtype, payload=form.payload(), actor=request.user,
                media=files["media"], thumb=files["thumb"],
            )
        except (SendRefused, MediaRefused) as refusal:
            form.add_error(None, refusal.explanation)
        else:
            outbound.refresh_from_db(fields=["status", "attempts", "error"])
            if outbound.awaits_worker:
                # Saved, but the task queue is down: the outbox sweep sends it later.
                messages.warning(request, _("The message is saved and will be sent when the worker is back."))
            elif not wants_fragment(request):
                messages.success(request, _("The message is queued for sending."))
            if not wants_fragment(request):
                return redirect(f"{reverse('messaging:conversation', args=[openid])}#o{outbound.pk}")
            fresh = type(form)(
                account=ctx.account, only=only, initial={"as_agent": form.cleaned_data["as_agent"].pk}
            )
            context = _conversation_context(request, ctx, openid, customer, form=fresh)
            return respond(request, ctx, context, fragment="messaging/_composer.html", trigger=TIMELINE_CHANGED)
    context = _conversation_context(request, ctx, openid, customer, form=form)
    return respond(request, ctx, context, page="messaging/conversation.html", fragment="messaging/_composer.html")


@require_POST
@account_view(SUPERVISOR, AGENT)
def typing(request: HttpRequest, ctx: AccountContext, openid: str) -> HttpResponse:
    customer = _conversation_customer(ctx, openid)
    if customer is None:
        raise Http404("kfadmin has not seen this customer write")
    form = TypingForm(request.POST)
    command = form.cleaned_data["command"] if form.is_valid() else "Typing"
    ok, note = True, ""
    try:
        typing_send(account=ctx.account, customer=customer, command=command, actor=request.user)
    except (SendRefused, WeChatError) as failure:
        ok = False
        note = sentence_translate(failure.explanation) if isinstance(failure, SendRefused) else wechat_error_message(failure)
    else:
        note = (
            _("The customer sees “typing…” for up to 15 seconds, or until your message arrives.")
            if command == "Typing"
            else _("The typing indicator is off.")
        )
    if not wants_fragment(request):
        (messages.success if ok else messages.error)(request, note)
        return redirect("messaging:conversation", openid=openid)
    return respond(
        request, ctx,
        {"openid": openid, "typing_ok": ok, "typing_note": note, "window": selectors.customer_window(customer=customer)},
        fragment="messaging/_typing.html",
    )


@require_GET
@account_view(SUPERVISOR, AGENT, AUDITOR)
def outbound_status(request: HttpRequest, ctx: AccountContext, outbound_id: int) -> HttpResponse:
    outbound = selectors.outbound_get(account=ctx.account, outbound_id=outbound_id)
    if outbound is None:
        raise Http404("No such message")
    _conversation_customer(ctx, outbound.customer.openid)
    if not wants_fragment(request):
        return redirect(f"{reverse('messaging:conversation', args=[outbound.customer.openid])}#o{outbound.pk}")
    context: dict = {"o": outbound, "stale_before": selectors.outbound_stale_before()}
    if outbound.status in (
        OutboundMessage.Status.SENT, OutboundMessage.Status.FAILED, OutboundMessage.Status.UNKNOWN
    ):
        # The last poll of this message: the reply window beside it changed too.
        context.update(
            _session_box_context(outbound.customer.openid, outbound.customer, ctx.account), box_oob=True
        )
    return respond(request, ctx, context, fragment="messaging/_outbound.html")


@require_POST
@account_view(SUPERVISOR, AGENT)
def resend(request: HttpRequest, ctx: AccountContext, outbound_id: int) -> HttpResponse:
    """"Send again" on a failed message: a new message through the normal queue, once
    the person confirmed (without `confirm`, the confirm step is shown)."""
    outbound = selectors.outbound_get(account=ctx.account, outbound_id=outbound_id)
    if outbound is None:
        raise Http404("No such message")
    openid = outbound.customer.openid
    customer = _conversation_customer(ctx, openid)
    only = _sender_only(ctx)
    if only is not None and outbound.agent_id != only.pk:
        raise PermissionDenied("Agents send again only their own messages.")
    conversation_url = reverse("messaging:conversation", args=[openid])
    if request.POST.get("confirm") != "1":
        if wants_fragment(request):
            return respond(request, ctx, {"o": outbound, "confirm_resend": outbound.pk}, fragment="messaging/_outbound.html")
        context = _conversation_context(request, ctx, openid, customer)
        context["confirm_resend"] = outbound.pk
        return respond(request, ctx, context, page="messaging/conversation.html")
    note = ""
    try:
        again = outbound_resend(outbound=outbound, actor=request.user)
    except (SendRefused, SendAgainRefused) as refusal:
        note = refusal.explanation
        if not wants_fragment(request):
            messages.error(request, note)
            return redirect(f"{conversation_url}#o{outbound.pk}")
    else:
        if not wants_fragment(request):
            messages.success(request, _("The message is queued to be sent again."))
            return redirect(f"{conversation_url}#o{again.pk}")
    outbound.refresh_from_db()
    return respond(
        request, ctx, {"o": outbound, "resend_note": note}, fragment="messaging/_outbound.html",
        trigger=None if note else TIMELINE_CHANGED,
    )


@require_GET
@account_view(SUPERVISOR, AGENT, AUDITOR)
def transcript(request: HttpRequest, ctx: AccountContext, openid: str) -> HttpResponse:
    customer = _conversation_customer(ctx, openid)
    asked = RecordFilter(openid=openid)
    records = records_iter_export(account=ctx.account, filters=asked)
    rows = []
    truncated = False
    for index, record in enumerate(records):
        if index >= TRANSCRIPT_LIMIT:
            truncated = True
            break
        rows.append(selectors.TimelineItem(time=record.time, record=record))
    history_export_record(account=ctx.account, actor=request.user, export_format="transcript", filters=asked)
    return respond(
        request, ctx,
        {"openid": openid, "customer": customer, "records": rows, "truncated": truncated,
         "limit": TRANSCRIPT_LIMIT, "printed_at": timezone.now()},
        page="messaging/transcript.html",
    )


# ------------------------------------------------------------------ history


def _history_form(request: HttpRequest, ctx: AccountContext) -> HistoryFilterForm:
    lock = ctx.agent if ctx.is_agent else None
    return HistoryFilterForm(request.GET or None, account=ctx.account, lock_agent=lock)


def _record_filter(ctx: AccountContext, form: HistoryFilterForm) -> RecordFilter:
    """What a valid filter form asks for; before any search, everything the person
    may see (an agent: their own conversations)."""
    if form.is_bound:
        return form.record_filter()
    return RecordFilter(agent=ctx.agent if ctx.is_agent else None)


def _agent_without_kf(ctx: AccountContext) -> bool:
    # An agent-role user not linked to a kf account has no customers: show nothing.
    return ctx.is_agent and ctx.agent is None


def _result_rows(ctx: AccountContext, records: list[MessageRecord]) -> list[tuple[MessageRecord, str, str]]:
    """(record, the agent's name, the customer's remark name) per result."""
    names = account_selectors.agent_names(account=ctx.account, kf_accounts={r.worker for r in records if r.worker})
    remarks = session_selectors.customer_remark_names(account=ctx.account, openids={r.openid for r in records})
    return [(r, names.get(r.worker, r.worker), remarks.get(r.openid, "")) for r in records]


@require_GET
@account_view(SUPERVISOR, AGENT, AUDITOR)
def history(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    form = _history_form(request, ctx)
    rows: list[tuple[MessageRecord, str, str]] = []
    next_cursor = None
    searched = False
    total = None
    if form.is_bound and form.is_valid() and not _agent_without_kf(ctx):
        searched = True
        asked = _record_filter(ctx, form)
        try:
            page = records_search(
                account=ctx.account, filters=asked,
                after_cursor=form.cleaned_data.get("cursor") or None, limit=HISTORY_PAGE_SIZE,
            )
        except ValueError:
            form.add_error(None, _("The “older” link is no longer valid. Run the search again."))
        else:
            rows = _result_rows(ctx, page.records)
            next_cursor = page.next_cursor
            total = records_count(account=ctx.account, filters=asked)
    elif not form.is_bound and not _agent_without_kf(ctx):
        # Before any search: the newest records, so the page is never blank.
        asked = _record_filter(ctx, form)
        page = records_search(account=ctx.account, filters=asked, limit=HISTORY_PAGE_SIZE)
        rows = _result_rows(ctx, page.records)
        next_cursor = page.next_cursor
        total = records_count(account=ctx.account, filters=asked)
    params = request.GET.copy()
    params.pop("cursor", None)
    query_string = params.urlencode()
    context = {
        "form": form,
        "rows": rows,
        # What the results highlight: the words searched for, once the search ran.
        "query": asked.q if searched else None,
        "next_cursor": next_cursor,
        "searched": searched,
        "query_string": query_string,
        "older_url": f"?{query_string}&cursor={next_cursor}" if query_string else f"?cursor={next_cursor}",
        "kind_of": {code: kind for kind, codes in KINDS.items() for code in codes},
        "is_older_page": bool(request.GET.get("cursor")),
        "total": total,
    }
    # A search swaps only the results: the filters stay on screen (and keep focus),
    # and their error slots come along out of band.
    context["filter_errors_oob"] = region(request) == "history-results"
    return respond(
        request, ctx, context, page="messaging/history.html", targets={"history-results": "messaging/_results.html"}
    )


# ------------------------------------------------------------------ exports
# A small export streams from the request; a large one (more than
# EXPORT_STREAM_MAX_ROWS by the capped count) would hold a web worker for as long
# as the slowest client reads, so it becomes a background job the exports page
# follows, downloadable by its requester, or a supervisor or auditor of the account.

EXPORT_FORMATS = ("csv", "jsonl")
EXPORTS_POLL_SECONDS = 2


def _export_filter(request: HttpRequest, ctx: AccountContext) -> RecordFilter | HttpResponse:
    """What the export's filters ask for, or the redirect back to fix them."""
    form = _history_form(request, ctx)
    if request.GET and not form.is_valid():
        messages.error(request, _("Fix the search filters before exporting."))
        return redirect(f"{reverse('messaging:history')}?{request.GET.urlencode()}")
    if _agent_without_kf(ctx):
        raise PermissionDenied("Your account is not linked to a kf account.")
    return _record_filter(ctx, form)


def _export_job(request: HttpRequest, ctx: AccountContext, job_id: int) -> ExportJob:
    """The job, if this person may see it: its requester, or a supervisor or auditor of
    the account (who may export the same records themselves); else 404."""
    job = selectors.export_job_visible(
        account=ctx.account, user_id=request.user.pk, everyone=not ctx.is_agent, job_id=job_id
    )
    if job is None:
        raise Http404("No such export")
    return job


@require_http_methods(["GET", "HEAD", "POST"])
@account_view(SUPERVISOR, AGENT, AUDITOR)
def export(request: HttpRequest, ctx: AccountContext, fmt: str) -> HttpResponseBase:
    if fmt not in EXPORT_FORMATS:
        raise Http404("Unknown export format")
    asked = _export_filter(request, ctx)
    if isinstance(asked, HttpResponse):
        return asked
    if request.method == "POST":
        export_job_create(account=ctx.account, actor=request.user, export_format=fmt, filters=asked)
        messages.success(request, _("The export is being prepared. It stays here to download for %(hours)s hours.")
                         % {"hours": settings.EXPORT_KEEP_HOURS})
        return redirect("messaging:exports")
    limit = settings.EXPORT_STREAM_MAX_ROWS
    counted = records_count(account=ctx.account, filters=asked, cap=limit)
    if counted.count is None or counted.more:
        # Too many to stream (or too slow to count, which says as much): ask to
        # prepare it in the background.
        return respond(
            request, ctx, {"fmt": fmt, "limit": limit, "counted": counted, "query_string": request.GET.urlencode()},
            page="messaging/export_start.html",
        )
    history_export_record(account=ctx.account, actor=request.user, export_format=fmt, filters=asked)
    # Every remark name of the account at once: one read, however long the export.
    remarks = session_selectors.customer_remark_names(account=ctx.account)
    rows = records_iter_export_rows(account=ctx.account, filters=asked)
    response = StreamingHttpResponse(
        export_lines(fmt, rows, ctx.account.zone, remarks), content_type=export_content_type(fmt)
    )
    stamp = timezone.now().astimezone(ctx.account.zone).strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="kfadmin-history-{stamp}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response


@require_GET
@account_view(SUPERVISOR, AGENT, AUDITOR)
def exports(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    jobs = selectors.export_jobs_visible(account=ctx.account, user_id=request.user.pk, everyone=not ctx.is_agent)
    context = {
        "jobs": jobs,
        "polling": any(job.is_active for job in jobs),
        "poll_seconds": EXPORTS_POLL_SECONDS,
        "keep_hours": settings.EXPORT_KEEP_HOURS,
        "now": timezone.now(),
    }
    return respond(request, ctx, context, page="messaging/exports.html", fragment="messaging/_export_jobs.html")


@require_GET
@account_view(SUPERVISOR, AGENT, AUDITOR)
def export_download(request: HttpRequest, ctx: AccountContext, job_id: int) -> HttpResponseBase:
    job = _export_job(request, ctx, job_id)
    if job.status != ExportJob.Status.DONE or (job.expires_at is not None and job.expires_at <= timezone.now()):
        messages.error(request, _("This export cannot be downloaded (it is not ready, failed or was removed)."))
        return redirect("messaging:exports")
    try:
        handle = open(export_job_path(job), "rb")  # noqa: SIM115  (FileResponse closes it)
    except FileNotFoundError:
        messages.error(request, sentence_translate(EXPORT_FILE_MISSING))
        return redirect("messaging:exports")
    export_job_download_record(job=job, actor=request.user)
    response = FileResponse(
        handle, as_attachment=True, filename=job.download_name(ctx.account.zone),
        content_type=export_content_type(job.export_format),
    )
    response["Cache-Control"] = "no-store"
    return response


# ------------------------------------------------------------------ inbox

INBOX_AGENT_SESSION_KEY = "kfadmin_inbox_agent"


def _inbox_agent(request: HttpRequest, ctx: AccountContext) -> tuple[Agent | None, str]:
    """Whose open sessions the inbox lists: an agent's own; for a supervisor the agent
    picked (`?agent=<id>`, or "all"), remembered in the session for the conversation
    pages. Returns the agent (None: all) and the choice as the picker shows it."""
    if ctx.is_agent:
        return ctx.agent, ""
    raw = request.GET.get("agent")
    if raw is None:
        raw = request.session.get(INBOX_AGENT_SESSION_KEY, "all")
    elif request.session.get(INBOX_AGENT_SESSION_KEY) != raw:
        request.session[INBOX_AGENT_SESSION_KEY] = raw
    picked = None
    listed = Agent.objects.listed().filter(official_account=ctx.account)
    raw = raw.strip()
    if raw.isdigit() and len(raw) < 19:
        picked = listed.filter(pk=int(raw)).first()
    elif "@" in raw:  # a large team's field takes the kf account
        picked = listed.filter(kf_account=raw).first()
    return picked, str(picked.pk) if picked else "all"


def _inbox_agents(ctx: AccountContext) -> list[Agent] | None:
    """The supervisor's drop-down of agents; None for a team larger than
    settings.AGENT_SELECT_MAX, which gets a search-as-you-type field instead."""
    if not ctx.is_supervisor:
        return []
    listed = Agent.objects.listed().filter(official_account=ctx.account)
    agents = list(listed.only("pk", "kf_account", "kf_nick")[: settings.AGENT_SELECT_MAX + 1])
    return None if len(agents) > settings.AGENT_SELECT_MAX else agents


def _inbox_unknown(request: HttpRequest, picked: Agent | None) -> str:
    """What a supervisor typed that names no listed agent ("" when it does, or when
    they asked for everyone), so the inbox says it shows everyone instead."""
    raw = (request.GET.get("agent") or "").strip()
    return raw[:64] if picked is None and raw not in ("", "all") else ""


def _inbox_context(request: HttpRequest, ctx: AccountContext) -> dict:
    agent, choice = _inbox_agent(request, ctx)
    if ctx.is_agent and agent is None:
        inbox = None  # an agent role without a kf account has no sessions
    else:
        inbox = selectors.inbox_sessions(account=ctx.account, user=request.user, agent=agent)
    return {
        "inbox": inbox,
        "inbox_choice": choice,
        "inbox_agents": _inbox_agents(ctx),
        "inbox_picked": agent,
        "inbox_unknown": _inbox_unknown(request, agent),
        "inbox_as_of": as_of(),
        "inbox_freshness": selectors.records_freshness(account=ctx.account),
        "now": timezone.now(),
        "poll_seconds": POLL_SECONDS,
    }


@require_GET
@account_view(SUPERVISOR, AGENT)
def inbox(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    """The open conversations (an agent's own; a supervisor's pick of agent, or all),
    who waited longest for an answer first, with their unread messages. Polled."""
    region_ = _inbox_region(request, ctx)
    return versions.live_poll(
        request, region_,
        lambda token: respond(
            request, ctx, {**_inbox_context(request, ctx), "inbox_token": token},
            page="messaging/inbox.html", fragment="messaging/_inbox.html",
        ),
    )


def _inbox_region(request: HttpRequest, ctx: AccountContext) -> versions.Region:
    """Per person: the unread counts are theirs; a supervisor's pick of agent too."""
    choice = "" if ctx.is_agent else request.GET.get("agent") or request.session.get(INBOX_AGENT_SESSION_KEY, "all")
    return versions.Region(
        ctx, "inbox", (versions.SESSIONS, versions.MESSAGES, versions.AGENTS, versions.seen_domain(request.user.pk or 0)),
        variant=f"{ctx.role}.{request.user.pk}.{choice}",
    )


# ------------------------------------------------------------------ alerts


@require_GET
@account_view(SUPERVISOR, AGENT)
def alerts(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    """What static/js/alerts.js needs to count in the tab title, ring and notify:
    polled from every page of people who serve customers."""
    if not wants_fragment(request):
        return redirect("accounts:alert_settings")
    polled = versions.Region(
        ctx, "alerts", (versions.SESSIONS, versions.MESSAGES, versions.seen_domain(request.user.pk or 0)),
        variant=f"{ctx.role}.{request.user.pk}.{ctx.agent.pk if ctx.is_agent and ctx.agent else ''}",
    )

    def build(token: str) -> HttpResponse:
        state = selectors.alerts_state(
            account=ctx.account, user=request.user, agent=ctx.agent if ctx.is_agent else None,
            supervisor=ctx.is_supervisor,
        )
        return respond(
            request, ctx,
            {"alerts": state, "preference": account_selectors.alert_preference(user=request.user),
             "poll_seconds": POLL_SECONDS, "live_token": token},
            fragment="messaging/_alerts.html",
        )

    return versions.live_poll(request, polled, build)


# ------------------------------------------------------------------ media


@require_GET
@account_view(SUPERVISOR, AGENT, AUDITOR)
def media_file(request: HttpRequest, ctx: AccountContext, media_file_id: int) -> HttpResponseBase:
    """A kept file (sent by an agent or by a customer), for the timeline's pictures and
    players. A file, not a page, so it does not go through respond(): the type is the
    one sniffed from its bytes, browsers must not guess another (nosniff), and
    anything but a picture is a download if opened directly."""
    media = media_file_for_viewer(ctx=ctx, user=request.user, media_file_id=media_file_id)
    if media is None:
        raise Http404("No such file")
    stored = media.file.name or ""
    extension = stored.rsplit(".", 1)[-1] if "." in stored else "bin"
    response = FileResponse(
        media.file.open("rb"), content_type=media.content_type,
        as_attachment=not media.is_image, filename=f"{media.kind}-{media.pk}.{extension}",
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=86400"
    if media.is_image:
        response["Content-Disposition"] = "inline"
    return response


@require_GET
@account_view(SUPERVISOR, AGENT, AUDITOR)
def library(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    """The account's permanent materials and published articles as kfadmin last
    copied them (the library sync), searchable; from a conversation (?for=<openid>)
    each item can be sent there."""
    kind = request.GET.get("kind", "")
    if kind not in LibraryItem.Kind.values:
        kind = ""
    query = request.GET.get("q", "")[:100]
    openid = request.GET.get("for", "")
    conversation_url = ""
    if openid and ctx.can_send:
        _conversation_customer(ctx, openid)
        conversation_url = reverse("messaging:conversation", args=[openid])
    page = library_search(account=ctx.account, kind=kind, query=query, page=request.GET.get("page", 1))
    context = {
        "page": page,
        "rows": [(item, LIBRARY_SEND_TYPES[item.kind]) for item in page.object_list],
        "kind": kind,
        "query": query,
        "openid": openid if conversation_url else "",
        "conversation_url": conversation_url,
        "kinds": LibraryItem.Kind.choices,
        "synced": library_synced_at(account=ctx.account),
    }
    return respond(request, ctx, context, page="messaging/library.html", fragment="messaging/_library_results.html")


# Library kind -> the composer's message type that sends it.
LIBRARY_SEND_TYPES = {
    LibraryItem.Kind.IMAGE: "image",
    LibraryItem.Kind.VOICE: "voice",
    LibraryItem.Kind.VIDEO: "video",
    LibraryItem.Kind.NEWS: "mpnews",
    LibraryItem.Kind.ARTICLE: "mpnewsarticle",
}
