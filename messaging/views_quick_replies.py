"""Quick replies: the management page (list, search, pages, add, edit, delete with a
confirmation) and the composer's picker (what `/` lists, and counting a pick).

Shared replies are the account's: supervisors add, change and delete them; everyone
who sends (supervisors and agents) uses them. Personal replies are their owner's
alone. Auditors send nothing, so they have no quick replies.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.access import AGENT, SUPERVISOR, AccountContext, account_view
from accounts.responses import respond
from messaging import selectors
from messaging.forms import QuickReplyFilterForm, QuickReplyForm
from messaging.media import library_items_attach
from messaging.models import QuickReply
from messaging.services import (
    quick_reply_create,
    quick_reply_delete,
    quick_reply_update,
    quick_reply_use,
)

PAGE_SIZE = 25


def _reply_visible(request: HttpRequest, ctx: AccountContext, reply_id: int) -> QuickReply:
    """A reply the person may use (shared, or their own); 404 for anything else, so
    another person's replies are not even confirmed to exist."""
    reply = selectors.quick_reply_get(account=ctx.account, user=request.user, reply_id=reply_id)
    if reply is None:
        raise Http404("No such quick reply")
    return reply


def _reply_editable(request: HttpRequest, ctx: AccountContext, reply_id: int) -> QuickReply:
    """A reply the person may change: their own, or a shared one if they supervise."""
    reply = _reply_visible(request, ctx, reply_id)
    if reply.is_shared and not ctx.is_supervisor:
        raise PermissionDenied("Only supervisors change shared quick replies.")
    return reply


@require_GET
@account_view(SUPERVISOR, AGENT)
def quick_replies(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    form = QuickReplyFilterForm(request.GET or None)
    q, scope, number = "", "all", 1
    if form.is_bound and form.is_valid():
        q = form.cleaned_data["q"] or ""
        scope = form.cleaned_data["scope"] or "all"
        number = form.cleaned_data["page"] or 1
    replies = selectors.quick_replies_list(account=ctx.account, user=request.user, q=q, scope=scope)
    page = Paginator(replies, PAGE_SIZE).get_page(number)
    library_items_attach(account=ctx.account, replies=page.object_list)
    params = request.GET.copy()
    params.pop("page", None)
    return respond(
        request, ctx,
        {"form": form, "page": page, "q": q, "scope": scope, "query_string": params.urlencode(),
         "searched": bool(q) or scope != "all"},
        page="messaging/quick_replies.html", targets={"quick-reply-list": "messaging/_quick_reply_list.html"},
    )


def _form_page(request: HttpRequest, ctx: AccountContext, form: QuickReplyForm, reply: QuickReply | None) -> HttpResponse:
    status = 422 if form.is_bound else 200
    return respond(
        request, ctx, {"form": form, "reply": reply}, page="messaging/quick_reply_form.html",
        fragment="messaging/_quick_reply_form.html", status=status,
    )


@require_http_methods(["GET", "POST"])
@account_view(SUPERVISOR, AGENT)
def quick_reply_add(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    form = QuickReplyForm(
        request.POST or None, can_share=ctx.is_supervisor, account=ctx.account, initial={"shared": ctx.is_supervisor}
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        reply = quick_reply_create(
            account=ctx.account, owner=None if data.get("shared", False) else request.user, title=data["title"],
            msgtype=data["msgtype"], text=data["text"], library_ident=data["library_ident"], actor=request.user,
        )
        messages.success(request, _("The quick reply “%(title)s” is saved.") % {"title": reply.title})
        return redirect("messaging:quick_replies")
    return _form_page(request, ctx, form, None)


@require_http_methods(["GET", "POST"])
@account_view(SUPERVISOR, AGENT)
def quick_reply_edit(request: HttpRequest, ctx: AccountContext, reply_id: int) -> HttpResponse:
    reply = _reply_editable(request, ctx, reply_id)
    picked = f"{reply.msgtype}:{reply.library_ident}" if reply.library_ident else ""
    form = QuickReplyForm(
        request.POST or None, can_share=False, account=ctx.account,
        initial={"title": reply.title, "msgtype": reply.msgtype, "text": reply.text, "library": picked},
    )
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        quick_reply_update(
            reply=reply, title=data["title"], msgtype=data["msgtype"], text=data["text"],
            library_ident=data["library_ident"], actor=request.user,
        )
        messages.success(request, _("The quick reply “%(title)s” is saved.") % {"title": reply.title})
        return redirect("messaging:quick_replies")
    return _form_page(request, ctx, form, reply)


@require_http_methods(["GET", "POST"])
@account_view(SUPERVISOR, AGENT)
def quick_reply_remove(request: HttpRequest, ctx: AccountContext, reply_id: int) -> HttpResponse:
    """GET asks for a confirmation; POST deletes."""
    reply = _reply_editable(request, ctx, reply_id)
    if request.method == "POST":
        title = reply.title
        quick_reply_delete(reply=reply, actor=request.user)
        messages.success(request, _("The quick reply “%(title)s” is deleted.") % {"title": title})
        return redirect("messaging:quick_replies")
    return respond(request, ctx, {"reply": reply}, page="messaging/quick_reply_delete.html")


# ------------------------------------------------------------------ the composer's picker


@require_GET
@account_view(SUPERVISOR, AGENT)
def quick_reply_pick(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    """The picker's options for what follows `/` (static/js/quick-replies.js asks)."""
    q = request.GET.get("q", "")[:200]
    replies = selectors.quick_replies_pick(account=ctx.account, user=request.user, q=q)
    library_items_attach(account=ctx.account, replies=replies)
    return respond(
        request, ctx, {"replies": replies, "q": q, "manage_url": reverse("messaging:quick_replies")},
        fragment="messaging/_quick_reply_options.html",
    )


@require_POST
@account_view(SUPERVISOR, AGENT)
def quick_reply_used(request: HttpRequest, ctx: AccountContext, reply_id: int) -> HttpResponse:
    """The person picked this reply: counted, so their common ones come first."""
    reply = _reply_visible(request, ctx, reply_id)
    quick_reply_use(reply=reply, user=request.user)
    return HttpResponse(status=204)
