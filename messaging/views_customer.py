"""Who the customer is: the side panel of a conversation (kfadmin's remark name, tags
and notes; what the archive and the sessions say), search within the conversation
and jumping to a date of it.

The panel reads records and sessions, so it lives in messaging; the customer's
profile is sessions_app's (`customer_profile_update`, `customer_note_add`). Each
endpoint checks access itself through `_conversation_customer`, like its page:
agents see only their own customers, auditors read and change nothing.
"""

from __future__ import annotations

from datetime import datetime, time

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.access import AGENT, AUDITOR, SUPERVISOR, AccountContext, account_view
from accounts.responses import respond, wants_fragment
from messaging import selectors
from messaging.forms import ConversationFindForm
from messaging.views import _conversation_customer
from sessions_app import selectors as session_selectors
from sessions_app.forms import CustomerNoteForm, CustomerProfileForm
from sessions_app.models import Customer, CustomerNote
from sessions_app.services import customer_note_add, customer_note_delete, customer_profile_update

PANEL_PAGE = "messaging/customer.html"
PANEL = "messaging/_customer_panel.html"


def customer_panel_context(
    request: HttpRequest,
    ctx: AccountContext,
    openid: str,
    customer: Customer | None,
    *,
    profile_form: CustomerProfileForm | None = None,
    note_form: CustomerNoteForm | None = None,
) -> dict:
    """What the panel shows; the conversation page includes the panel with this too."""
    can_edit = ctx.can_send and customer is not None
    if can_edit and profile_form is None:
        assert customer is not None
        profile_form = CustomerProfileForm(
            initial={"remark_name": customer.remark_name, "tags": ", ".join(customer.tags)}
        )
    find = ConversationFindForm(request.GET if ("q" in request.GET or "day" in request.GET) else None)
    found = None
    if find.is_bound and find.is_valid() and find.cleaned_data["q"]:
        found = selectors.conversation_find(account=ctx.account, openid=openid, q=find.cleaned_data["q"])
    return {
        "openid": openid,
        "customer": customer,
        "facts": selectors.customer_facts(account=ctx.account, openid=openid, customer=customer),
        "notes": session_selectors.customer_notes(customer=customer) if customer is not None else [],
        "can_edit": can_edit,
        "profile_form": profile_form,
        "note_form": (note_form or CustomerNoteForm()) if can_edit else None,
        "find_form": find,
        "found": found,
        "conversation_url": reverse("messaging:conversation", args=[openid]),
        "panel_url": reverse("messaging:customer_panel", args=[openid]),
    }


def _answer(request: HttpRequest, ctx: AccountContext, context: dict, *, status: int = 200) -> HttpResponse:
    return respond(request, ctx, context, page=PANEL_PAGE, fragment=PANEL, status=status)


def _editable_customer(ctx: AccountContext, openid: str) -> Customer:
    customer = _conversation_customer(ctx, openid)
    if customer is None:
        raise Http404("kfadmin keeps notes only for customers it has seen write")
    return customer


@require_GET
@account_view(SUPERVISOR, AGENT, AUDITOR)
def customer_panel(request: HttpRequest, ctx: AccountContext, openid: str) -> HttpResponse:
    """The panel (htmx), or a page holding it: its find form works without JavaScript."""
    customer = _conversation_customer(ctx, openid)
    return _answer(request, ctx, customer_panel_context(request, ctx, openid, customer))


@require_POST
@account_view(SUPERVISOR, AGENT)
def customer_profile(request: HttpRequest, ctx: AccountContext, openid: str) -> HttpResponse:
    customer = _editable_customer(ctx, openid)
    form = CustomerProfileForm(request.POST)
    if not form.is_valid():
        return _answer(request, ctx, customer_panel_context(request, ctx, openid, customer, profile_form=form), status=422)
    changed = customer_profile_update(
        customer=customer, remark_name=form.cleaned_data["remark_name"], tags=form.cleaned_data["tags"],
        actor=request.user,
    )
    messages.success(request, _("The customer's name and tags are saved.") if changed else _("Nothing changed."))
    if not wants_fragment(request):
        return redirect(f"{reverse('messaging:conversation', args=[openid])}#customer-panel")
    context = customer_panel_context(request, ctx, openid, customer)
    # The conversation's heading names the customer too: renamed along, out of band.
    context["name_oob"] = True
    return _answer(request, ctx, context)


@require_POST
@account_view(SUPERVISOR, AGENT)
def customer_note(request: HttpRequest, ctx: AccountContext, openid: str) -> HttpResponse:
    customer = _editable_customer(ctx, openid)
    form = CustomerNoteForm(request.POST)
    if not form.is_valid():
        return _answer(request, ctx, customer_panel_context(request, ctx, openid, customer, note_form=form), status=422)
    customer_note_add(customer=customer, text=form.cleaned_data["text"], actor=request.user)
    messages.success(request, _("The note is saved."))
    if not wants_fragment(request):
        return redirect(f"{reverse('messaging:conversation', args=[openid])}#customer-notes")
    return _answer(request, ctx, customer_panel_context(request, ctx, openid, customer))


@require_http_methods(["GET", "POST"])
@account_view(SUPERVISOR, AGENT)
def customer_note_remove(request: HttpRequest, ctx: AccountContext, openid: str, note_id: int) -> HttpResponse:
    """GET asks for a confirmation; POST removes the note. Its author or a supervisor
    may; anyone else of the account gets 403, another account's note does not exist."""
    customer = _editable_customer(ctx, openid)
    note = CustomerNote.objects.filter(pk=note_id, customer=customer).first()
    if note is None:
        raise Http404("no such note about this customer")
    if not (ctx.is_supervisor or note.author_id == request.user.pk):
        raise PermissionDenied("Only the note's author or a supervisor may remove it.")
    conversation_url = reverse("messaging:conversation", args=[openid])
    if request.method == "POST":
        customer_note_delete(note=note, actor=request.user)
        messages.success(request, _("The note is removed."))
        if not wants_fragment(request):
            return redirect(f"{conversation_url}#customer-notes")
        return respond(
            request, ctx, customer_panel_context(request, ctx, openid, customer),
            page=PANEL_PAGE, fragment="messaging/_customer_panel_note_removed.html",
        )
    return respond(
        request, ctx, {"note": note, "openid": openid, "conversation_url": conversation_url},
        page="messaging/customer_note_delete.html", fragment="messaging/_customer_note_delete.html",
    )


@require_GET
@account_view(SUPERVISOR, AGENT, AUDITOR)
def conversation_jump(request: HttpRequest, ctx: AccountContext, openid: str) -> HttpResponse:
    """The conversation around the first message of a day (in the account's time zone)."""
    customer = _conversation_customer(ctx, openid)
    form = ConversationFindForm(request.GET)
    conversation_url = reverse("messaging:conversation", args=[openid])
    if not form.is_valid() or form.cleaned_data["day"] is None:
        problems = form.errors.get("day")
        messages.error(request, str(problems[0]) if problems else _("Choose a date to jump to."))
        context = customer_panel_context(request, ctx, openid, customer)
        return _answer(request, ctx, context, status=422)
    start = datetime.combine(form.cleaned_data["day"], time.min, tzinfo=ctx.account.zone)
    record_id = selectors.conversation_record_on_or_after(account=ctx.account, openid=openid, at=start)
    if record_id is None:
        messages.info(request, _("This conversation has no messages in the archive yet."))
        return redirect(conversation_url)
    return redirect(f"{conversation_url}?at={record_id}#r{record_id}")
