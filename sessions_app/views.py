"""The queue and sessions board, and the session actions (assign, close, transfer).

Each URL serves its full page, or for an HTMX request the fragment it swaps: the
board's two polled regions are chosen by `HX-Target`. Actions render into the
`#action-panel` region, outside the polled lists, so a refresh never wipes a form
the supervisor is filling in; a completed action fires `sessionsChanged` so every
list on the page refreshes at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop as _noop
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import live
from accounts.access import AGENT, SUPERVISOR, AccountContext, account_view
from accounts.models import Agent
from accounts.responses import region, respond, wants_fragment
from accounts.sentences import wechat_error_message
from kfadmin.wechat import WeChatError
from sessions_app import selectors
from sessions_app.auto_assign import auto_assign_set
from sessions_app.forms import AssignForm, AutoAssignForm, TransferForm
from sessions_app.models import AutoAssign, KfSession
from sessions_app.services import (
    SessionNeedsConfirmation,
    SessionStateError,
    SessionTransferIncomplete,
    session_assign,
    session_close,
    session_transfer,
)

POLL_SECONDS = 5
SESSIONS_CHANGED = "sessionsChanged"


def as_of() -> str:
    """Server time for data-as-of: taken before the reads, so a later stamp never
    labels older data (static/js/fresh.js keeps the freshest copy of a region)."""
    return f"{time.time():.6f}"


def safe_next(request: HttpRequest, default: str) -> str:
    """The `next` URL of the request if it points back into kfadmin."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default


def selected_agent_id(request: HttpRequest) -> int | None:
    """The agent whose sessions a large board lists (`?agent=`); None if not a number."""
    raw = request.GET.get("agent", "")
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


def _board_context(ctx: AccountContext, *, waiting: bool = True, board: bool = True, selected_id: int | None = None) -> dict:
    """What the queue page shows; a polled fragment asks only for its own part, since
    the open-sessions board is by far the costlier one to build."""
    only = ctx.agent if ctx.is_agent else None
    context = {"as_of": as_of(), "now": timezone.now(), "poll_seconds": POLL_SECONDS}
    if waiting:
        context["counts"] = selectors.queue_counts(account=ctx.account)
        context["waiting"] = list(selectors.queue_waiting(account=ctx.account))
    if board:
        show = ctx.is_supervisor or only
        context["board"] = (
            selectors.sessions_board(account=ctx.account, agent=only, selected_id=selected_id) if show else None
        )
    return context


def _auto_context(ctx: AccountContext, form: AutoAssignForm | None = None) -> dict:
    """The auto-assignment panel: its state, and the supervisor's switch."""
    setting = selectors.auto_assign_get(account=ctx.account)
    return {
        "auto": setting,
        "auto_form": form or AutoAssignForm(initial={"strategy": setting.strategy}),
        "capacity": ctx.account.agent_capacity,
        "now": timezone.now(),
    }


@require_GET
@account_view(SUPERVISOR, AGENT)
def queue(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    selected_id = selected_agent_id(request)

    def answer(context: dict) -> HttpResponse:
        # The page, or the polled region HX-Target names.
        return respond(
            request, ctx, context, page="sessions_app/queue.html",
            targets={
                "open-sessions": "sessions_app/_sessions.html",
                "auto-assign-status": "sessions_app/_auto_assign_status.html",
            },
            fragment="sessions_app/_waiting.html",
        )

    # Each region reads only its own part: the board is by far the costlier one.
    # A region's token covers what it shows and what it varies by: the waiting list
    # only by role (Take or Assign…); an agent's board is their own.
    target = region(request)
    status = live.Region(ctx, "auto-assign-status", (live.AUTO_ASSIGN,))
    board = live.Region(
        ctx, "open-sessions", (live.SESSIONS, live.MESSAGES, live.AGENTS),
        variant=f"{ctx.role}.{ctx.agent.pk if ctx.is_agent and ctx.agent else ''}.{selected_id or ''}",
    )
    waiting = live.Region(ctx, "queue-waiting", (live.SESSIONS, live.MESSAGES), variant=ctx.role)
    if target == "auto-assign-status":
        return live.live_poll(request, status, lambda token: answer({**_auto_context(ctx), "live_token": token}))
    if target == "open-sessions":
        return live.live_poll(
            request, board,
            lambda token: answer({**_board_context(ctx, waiting=False, selected_id=selected_id), "live_token": token}),
        )
    if target is not None:
        return live.live_poll(
            request, waiting, lambda token: answer({**_board_context(ctx, board=False), "live_token": token})
        )
    # The whole page: each region's token is read before the data it shows.
    tokens = {
        "waiting_token": live.token(waiting.digest_for_render()),
        "board_token": live.token(board.digest_for_render()),
        "auto_token": live.token(status.digest_for_render()),
    }
    return answer({**tokens, **_board_context(ctx, selected_id=selected_id), **_auto_context(ctx)})


_AUTO_ASSIGN_DONE = {
    AutoAssign.State.ON: _noop("Auto-assignment is on: each queue refresh hands waiting customers to agents."),
    AutoAssign.State.PAUSED: _noop("Auto-assignment is paused: nobody is assigned until you resume it."),
    AutoAssign.State.OFF: _noop("Auto-assignment is off."),
}


@require_POST
@account_view(SUPERVISOR)
def auto_assign(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    """Turn auto-assignment on or off, pause or resume it (the queue page's switch)."""
    form = AutoAssignForm(request.POST)
    if not form.is_valid():
        context = {**_auto_context(ctx, form), **(_board_context(ctx) if not wants_fragment(request) else {})}
        return respond(
            request, ctx, context, page="sessions_app/queue.html", fragment="sessions_app/_auto_assign.html",
            status=400,
        )
    setting = auto_assign_set(
        account=ctx.account, state=form.cleaned_data["state"], strategy=form.cleaned_data["strategy"],
        actor=request.user,
    )
    messages.success(request, _(_AUTO_ASSIGN_DONE[AutoAssign.State(setting.state)]))
    if not wants_fragment(request):
        return redirect("sessions_app:queue")
    return respond(request, ctx, _auto_context(ctx), fragment="sessions_app/_auto_assign.html")


# ------------------------------------------------------------------ actions


def _action_response(
    request: HttpRequest, ctx: AccountContext, fragment: str, context: dict, *, title: str
) -> HttpResponse:
    """A form in the action panel: the fragment for HTMX, else a page around it (no
    JavaScript, or opened in a new tab) with plain forms that post and redirect back
    to `next`."""
    context = {**context, "fragment": fragment, "title": title, "standalone": not wants_fragment(request)}
    return respond(request, ctx, context, page="sessions_app/action.html", fragment=fragment)


def _action_done(request: HttpRequest, ctx: AccountContext, next_url: str) -> HttpResponse:
    """After a successful action: HTMX empties the panel, shows the flash message and
    tells every list to refresh; a plain POST redirects."""
    if not wants_fragment(request):
        return redirect(next_url)
    return respond(request, ctx, fragment="sessions_app/_action_panel.html", trigger=SESSIONS_CHANGED)


def _hand_over(
    request: HttpRequest, ctx: AccountContext, call: Callable[[], object], *, openid: str, agent: Agent, next_url: str
) -> tuple[HttpResponse | None, list[str], str]:
    """Run an assign or a transfer (`call`) and say how it went: the response once it
    is done, else the warnings to confirm or the error to show beside the form."""
    try:
        call()
    except SessionNeedsConfirmation as needs:
        return None, needs.warnings, ""
    except SessionTransferIncomplete as incomplete:
        # Half done: the old session is gone; say so where everybody sees it.
        messages.error(request, incomplete.explanation)
        return _action_done(request, ctx, next_url), [], ""
    except WeChatError as failure:
        return None, [], wechat_error_message(failure)
    except SessionStateError as failure:
        return None, [], str(failure)
    messages.success(
        request, _("%(customer)s is now with %(agent)s.") % {"customer": openid, "agent": agent.display_name}
    )
    return _action_done(request, ctx, next_url), [], ""


@require_GET
@account_view(SUPERVISOR, AGENT)
def panel_empty(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    """The empty action panel ("Cancel"); without HTMX there is no panel: the queue."""
    if not wants_fragment(request):
        return redirect("sessions_app:queue")
    return respond(request, ctx, fragment="sessions_app/_action_panel.html")


@require_http_methods(["GET", "POST"])
@account_view(SUPERVISOR, AGENT)
def assign(request: HttpRequest, ctx: AccountContext, openid: str) -> HttpResponse:
    customer = selectors.customer_get(account=ctx.account, openid=openid)
    if customer is None:
        raise Http404("No such customer")
    live = selectors.live_session_for(customer=customer)
    if ctx.is_agent:
        # Agents take waiting customers, for themselves only.
        if ctx.agent is None or live is None or live.state != KfSession.State.WAITING:
            raise Http404("Not in the queue")
    next_url = safe_next(request, reverse("sessions_app:queue"))
    only = ctx.agent if ctx.is_agent else None
    form = AssignForm(request.POST or None, account=ctx.account, only=only)
    warnings: list[str] = []
    error = ""
    if request.method == "POST" and form.is_valid():
        agent = form.cleaned_data["agent"]
        done, warnings, error = _hand_over(
            request, ctx,
            lambda: session_assign(
                account=ctx.account, customer=customer, agent=agent, actor=request.user,
                confirmed=form.cleaned_data["confirm"],
            ),
            openid=customer.display_name, agent=agent, next_url=next_url,
        )
        if done is not None:
            return done
    return _action_response(
        request, ctx, "sessions_app/_assign_form.html",
        {"form": form, "customer": customer, "live": live, "warnings": warnings, "error": error, "next": next_url},
        title=_("Assign a customer"),
    )


def _live_session_or_404(ctx: AccountContext, session_id: int) -> KfSession:
    session = selectors.session_get_live(account=ctx.account, session_id=session_id)
    if session is None:
        raise Http404("No such open session")
    if ctx.is_agent and (ctx.agent is None or session.agent_id != ctx.agent.pk):
        raise Http404("Not your session")
    return session


@require_http_methods(["GET", "POST"])
@account_view(SUPERVISOR, AGENT)
def close(request: HttpRequest, ctx: AccountContext, session_id: int) -> HttpResponse:
    session = _live_session_or_404(ctx, session_id)
    next_url = safe_next(request, reverse("sessions_app:queue"))
    error = ""
    if request.method == "POST":
        try:
            result = session_close(account=ctx.account, session=session, actor=request.user)
        except WeChatError as failure:
            error = wechat_error_message(failure)
        except SessionStateError as failure:
            error = str(failure)
        else:
            if result.already_closed:
                messages.info(request, _("WeChat had already ended this session; the list is up to date now."))
            else:
                messages.success(request, _("The session with %(customer)s is closed.") % {"customer": session.customer.display_name})
            return _action_done(request, ctx, next_url)
    return _action_response(
        request, ctx, "sessions_app/_close_form.html",
        {"session": session, "error": error, "next": next_url},
        title=_("Close a session"),
    )


@require_http_methods(["GET", "POST"])
@account_view(SUPERVISOR)
def transfer(request: HttpRequest, ctx: AccountContext, session_id: int) -> HttpResponse:
    session = _live_session_or_404(ctx, session_id)
    next_url = safe_next(request, reverse("sessions_app:queue"))
    form = TransferForm(request.POST or None, account=ctx.account, current=session.agent)
    warnings: list[str] = []
    error = ""
    if request.method == "POST" and form.is_valid():
        to_agent = form.cleaned_data["to_agent"]
        done, warnings, error = _hand_over(
            request, ctx,
            lambda: session_transfer(
                account=ctx.account, session=session, to_agent=to_agent, actor=request.user,
                confirmed=form.cleaned_data["confirm"],
            ),
            openid=session.customer.display_name, agent=to_agent, next_url=next_url,
        )
        if done is not None:
            return done
    return _action_response(
        request, ctx, "sessions_app/_transfer_form.html",
        {"form": form, "session": session, "warnings": warnings, "error": error, "next": next_url},
        title=_("Transfer a session"),
    )
