"""Pages and fragments for agents, dashboard users, the audit log and sync status.

Each page URL serves the full page, or (for an htmx request) just the fragment its
polling or its forms swap; `accounts.responses.respond` decides which. Writes are POSTs that call one service: a plain POST then
redirects, an htmx POST gets the fragment re-rendered from fresh state, plus the flash
messages as an out-of-band swap and an `HX-Trigger` event for the other regions.

The agents pages are for supervisors only: agents and auditors get 403 there (the
overview shows every role who is online and how loaded they are).
"""

from __future__ import annotations

from typing import Any

from axes.helpers import get_client_ip_address, get_client_username
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, SetPasswordForm
from django.contrib.messages.views import SuccessMessageMixin
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse, reverse_lazy
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from accounts import live, selectors, services
from accounts.access import (
    AGENT,
    ALL_ROLES,
    AUDITOR,
    SUPERVISOR,
    AccountContext,
    account_view,
    context_switch,
)
from accounts.forms import (
    AGENT_SCOPES,
    AGENT_SUGGESTIONS,
    AgentAddForm,
    AgentAvatarForm,
    AgentInviteForm,
    AgentListForm,
    AgentNicknameForm,
    AlertPreferenceForm,
    AlertThresholdsForm,
    AuditFilterForm,
    UserCreateForm,
    UserListForm,
    UserRolesForm,
)
from accounts.models import Agent, SyncState
from accounts.responses import respond, wants_fragment
from accounts.services import ServiceError

User = get_user_model()


# --------------------------------------------------------------------------- account switch


@require_POST
def account_switch(request: HttpRequest) -> HttpResponse:
    try:
        account_id = int(request.POST.get("account", ""))
    except ValueError:
        account_id = 0
    context_switch(request, account_id)
    return HttpResponseRedirect(_local_path(request.POST.get("next", "")))


def _local_path(url: str) -> str:
    """`url` when it is a path on this site (with its query), else the home page.

    Only a path is taken: `redirect()` would treat a bare word as a URL name to
    reverse, and a scheme or a host (`//evil`) would leave the site."""
    if url.startswith("/") and url_has_allowed_host_and_scheme(url, allowed_hosts=None, require_https=False):
        return url
    return "/"


# --------------------------------------------------------------------------- login


def login_locked_out(request: HttpRequest, original_response=None, credentials: dict | None = None) -> HttpResponse:
    """django-axes' answer to a login refused by a lockout: the login page, saying for how long."""
    username = get_client_username(request, credentials) or ""
    minutes = selectors.login_lockout_minutes_left(
        username=username, ip_address=getattr(request, "axes_ip_address", None) or get_client_ip_address(request)
    )
    context = {
        "form": AuthenticationForm(request, initial={"username": username}),
        "locked_out": ngettext(
            "Too many failed logins for this username from your address. Try again in %(minutes)d minute.",
            "Too many failed logins for this username from your address. Try again in %(minutes)d minutes.",
            minutes,
        )
        % {"minutes": minutes},
        "next": _local_path(request.POST.get("next", "")) if request.POST.get("next") else "",
    }
    return render(request, "registration/login.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)


# --------------------------------------------------------------------------- password


class PasswordChange(SuccessMessageMixin, auth_views.PasswordChangeView):
    """Django's password change, in kfadmin's page, audited."""

    http_method_names = ["get", "post"]
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("home")
    success_message = gettext_lazy("Your password has been changed.")

    def form_valid(self, form):
        response = super().form_valid(form)
        services.password_change_record(user=self.request.user)
        return response


password_change = PasswordChange.as_view()


# --------------------------------------------------------------------------- agents


def _agent_for(ctx: AccountContext, pk: int) -> Agent:
    """The agent `pk` of the current official account; another account's is a 404."""
    return get_object_or_404(selectors.agent_list(account=ctx.account), pk=pk)


# Rows a page of the agents and users tables shows: a team of 1000 stays one small,
# quick fragment (the agents table is polled).
PAGE_SIZE = 50


def _list_state(form: AgentListForm | UserListForm, names: tuple[str, ...]) -> tuple[dict[str, Any], int]:
    """The valid filters of a list form (a bad value falls back to its default, and the
    form shows why) and the page number asked for."""
    form.is_valid()
    data = getattr(form, "cleaned_data", {})
    filters = {name: data.get(name) or "" for name in names}
    return filters, data.get("page") or 1


def _list_context(page: Page, filters: dict[str, Any]) -> dict[str, Any]:
    """What the paginated tables share: the page, the query string of the filters (for
    the pager's links) and of the page shown (for its poll and the address bar)."""
    shown = {k: v for k, v in filters.items() if v}
    here = dict(shown, page=page.number) if page.number > 1 else shown
    return {
        "page": page,
        "filter_query": urlencode(shown),
        "page_query": urlencode(here),
        "searched": bool(shown),
    }


def _agents_context(request: HttpRequest, ctx: AccountContext) -> dict[str, Any]:
    now = timezone.now()
    form = AgentListForm(request.GET)
    filters, number = _list_state(form, ("q", "status"))
    agents = selectors.agent_search(account=ctx.account, q=filters["q"], status=filters["status"])
    page = Paginator(agents, PAGE_SIZE).get_page(number)
    for agent in page.object_list:
        agent.invite_state = selectors.agent_invite_state(agent, now=now)  # type: ignore[attr-defined]  # for the page, not a field
    return {
        "agents": page.object_list, "list_form": form, **_list_context(page, filters),
        "now": now, "nav": "agents",
    }


@require_GET
@account_view(SUPERVISOR)
def agents(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    options = "&".join(f"{k}={v}" for k, v in sorted(request.GET.items()) if k != "v")
    table = live.Region(ctx, "agent-table", (live.AGENTS, live.SESSIONS), variant=options)

    def build(token: str) -> HttpResponse:
        context = {**_agents_context(request, ctx), "live_token": token}
        if not wants_fragment(request):
            context["add_form"] = AgentAddForm(account=ctx.account)
        return respond(request, ctx, context, page="accounts/agents.html", fragment="accounts/_agent_table.html")

    return live.live_poll(request, table, build)


@require_GET
@account_view(*ALL_ROLES)
def agent_options(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    """The suggestions of a large team's agent field (forms.AgentPicker): at most
    AGENT_SUGGESTIONS <option>s for its <datalist>, matching what is typed in the field
    `field` names. `scope`: the bound agents (online first), the listed ones, or any
    the account ever had (history). The agent role is only ever offered its own agent."""
    scope = request.GET.get("scope", "")
    if scope not in AGENT_SCOPES:
        return HttpResponse(_("Unknown list of agents."), status=400, content_type="text/plain; charset=utf-8")
    q = request.GET.get(request.GET.get("field", ""), "")[:64]
    agents = selectors.agent_suggestions(account=ctx.account, q=q, scope=scope)
    if ctx.is_agent:
        agents = agents.filter(pk=ctx.agent.pk) if ctx.agent else agents.none()
    return render(request, "accounts/_agent_options.html", {
        "agents": agents[:AGENT_SUGGESTIONS], "presence": scope == "bound",
    })


@require_http_methods(["GET", "POST"])
@account_view(SUPERVISOR)
def agent_add(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    form = AgentAddForm(request.POST or None, account=ctx.account)
    if request.method == "POST" and form.is_valid():
        try:
            agent = services.agent_create(
                account=ctx.account,
                actor=request.user,
                prefix=form.cleaned_data["kf_prefix"],
                nickname=form.cleaned_data["nickname"],
            )
        except ServiceError as error:
            form.add_service_error(error)
        else:
            messages.success(
                request,
                _("Added %(account)s. Next, invite the person who will work as this agent.")
                % {"account": agent.kf_account},
            )
            if not wants_fragment(request):
                return redirect("accounts:agent_detail", pk=agent.pk)
            return respond(
                request,
                ctx,
                {"add_form": AgentAddForm(account=ctx.account)},
                fragment="accounts/_agent_add_form.html",
                trigger="agentsChanged",
            )
    context = {"add_form": form, "nav": "agents"}
    return respond(request, ctx, context, page="accounts/agent_add.html", fragment="accounts/_agent_add_form.html")


def _agent_detail_context(ctx: AccountContext, agent: Agent, **forms: Any) -> dict[str, Any]:
    agent.invite_state = selectors.agent_invite_state(agent)  # type: ignore[attr-defined]  # for the page, not a field
    return {
        "agent": agent,
        "can_invite": selectors.agent_can_invite(agent),
        "nickname_form": forms.get("nickname_form") or AgentNicknameForm(initial={"nickname": agent.kf_nick}),
        "avatar_form": forms.get("avatar_form") or AgentAvatarForm(),
        "invite_form": forms.get("invite_form") or AgentInviteForm(initial={"invite_wx": agent.invite_wx}),
        "nav": "agents",
    }


@require_GET
@account_view(SUPERVISOR)
def agent_detail(request: HttpRequest, ctx: AccountContext, pk: int) -> HttpResponse:
    card = live.Region(ctx, "agent-card", (live.AGENTS, live.SESSIONS), variant=str(pk))
    if card.unchanged(request):
        return live.not_modified()
    token = live.token(card.digest_for_render())
    agent = _agent_for(ctx, pk)
    # The card's refresh (its poll, or agentChanged after a form) updates the heading too.
    context = {**_agent_detail_context(ctx, agent), "head_oob": wants_fragment(request), "live_token": token}
    return respond(request, ctx, context, page="accounts/agent_detail.html", fragment="accounts/_agent_card.html")


def _agent_form_post(
    request: HttpRequest,
    ctx: AccountContext,
    pk: int,
    *,
    form_class: type,
    form_key: str,
    fragment: str,
    run: Any,
) -> HttpResponse:
    """The shared shape of the agent page's forms: validate, call one service, then
    redirect (plain POST) or re-render the form's fragment from fresh state (htmx)."""
    agent = _agent_for(ctx, pk)
    form = form_class(request.POST, request.FILES)
    if form.is_valid():
        try:
            success = run(agent, form)
        except ServiceError as error:
            form.add_service_error(error)
        else:
            for level, text in success:
                messages.add_message(request, level, text)
            if not wants_fragment(request):
                return redirect("accounts:agent_detail", pk=agent.pk)
            agent = _agent_for(ctx, pk)
            return respond(request, ctx, _agent_detail_context(ctx, agent), fragment=fragment, trigger="agentChanged")
    context = _agent_detail_context(ctx, agent, **{form_key: form})
    return respond(request, ctx, context, page="accounts/agent_detail.html", fragment=fragment)


@require_POST
@account_view(SUPERVISOR)
def agent_nickname(request: HttpRequest, ctx: AccountContext, pk: int) -> HttpResponse:
    def run(agent: Agent, form: AgentNicknameForm):
        services.agent_update(agent=agent, actor=request.user, nickname=form.cleaned_data["nickname"])
        return [(messages.SUCCESS, _("Nickname saved at WeChat."))]

    return _agent_form_post(
        request, ctx, pk, form_class=AgentNicknameForm, form_key="nickname_form",
        fragment="accounts/_agent_nickname_form.html", run=run,
    )


@require_POST
@account_view(SUPERVISOR)
def agent_avatar(request: HttpRequest, ctx: AccountContext, pk: int) -> HttpResponse:
    def run(agent: Agent, form: AgentAvatarForm):
        image = form.cleaned_data["avatar"]
        services.agent_avatar_upload(
            agent=agent, actor=request.user, content=image.content, width=image.width, height=image.height
        )
        return [(messages.SUCCESS, _("Avatar uploaded to WeChat."))] + [
            (messages.WARNING, note) for note in image.warnings
        ]

    return _agent_form_post(
        request, ctx, pk, form_class=AgentAvatarForm, form_key="avatar_form",
        fragment="accounts/_agent_avatar_form.html", run=run,
    )


@require_POST
@account_view(SUPERVISOR)
def agent_invite(request: HttpRequest, ctx: AccountContext, pk: int) -> HttpResponse:
    def run(agent: Agent, form: AgentInviteForm):
        invite_wx = form.cleaned_data["invite_wx"]
        services.agent_invite(agent=agent, actor=request.user, invite_wx=invite_wx)
        return [
            (
                messages.SUCCESS,
                _("Invitation sent to %(wx)s. They must accept it in WeChat before they can serve customers.")
                % {"wx": invite_wx},
            )
        ]

    return _agent_form_post(
        request, ctx, pk, form_class=AgentInviteForm, form_key="invite_form",
        fragment="accounts/_agent_invite.html", run=run,
    )


@require_http_methods(["GET", "POST"])
@account_view(SUPERVISOR)
def agent_delete(request: HttpRequest, ctx: AccountContext, pk: int) -> HttpResponse:
    """GET: the confirmation step naming the account; POST: delete it at WeChat."""
    agent = _agent_for(ctx, pk)
    error = ""
    if request.method == "POST":
        try:
            services.agent_delete(agent=agent, actor=request.user)
        except ServiceError as exc:
            error = exc.message
        else:
            messages.success(request, _("Deleted %(account)s at WeChat.") % {"account": agent.kf_account})
            if not wants_fragment(request):
                return redirect("accounts:agents")
            return respond(request, ctx, fragment="accounts/_modal_empty.html", trigger="agentsChanged")
    context = {"agent": agent, "error": error, "nav": "agents"}
    return respond(
        request, ctx, context, page="accounts/agent_delete.html", fragment="accounts/_agent_delete_dialog.html"
    )


# --------------------------------------------------------------------------- audit log


@require_GET
@account_view(SUPERVISOR, AUDITOR)
def audit(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    form = AuditFilterForm(
        request.GET or None,
        actors=selectors.audit_actors(account=ctx.account),
        actions=selectors.audit_actions(account=ctx.account),
    )
    filters: dict[str, Any] = {}
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        filters = {
            "actor_id": data["actor"],
            "action": data["action"],
            "day_from": data["day_from"],
            "day_to": data["day_to"],
            "cursor": data["cursor"],
        }
    page = selectors.audit_events(account=ctx.account, **filters)
    context = {"form": form, "page": page, "paged": bool(filters.get("cursor")), "nav": "audit"}
    return respond(request, ctx, context, page="accounts/audit.html", fragment="accounts/_audit_results.html")


# --------------------------------------------------------------------------- sync status


# The sync page refreshes itself quickly while a job runs, and slowly otherwise, so a
# run that the beat (or another supervisor) starts still shows up.
SYNC_POLL_ACTIVE_SECONDS = 3
SYNC_POLL_IDLE_SECONDS = 15


def _sync_context(ctx: AccountContext) -> dict[str, Any]:
    rows = selectors.sync_rows(account=ctx.account)
    active = selectors.sync_any_active(rows)
    return {
        "rows": rows,
        "polling": active,
        "poll_every": SYNC_POLL_ACTIVE_SECONDS if active else SYNC_POLL_IDLE_SECONDS,
        "runnable": set(services.SYNC_TASKS),
        "tail_seconds": settings.SYNC_TAIL_SECONDS,
        "nav": "sync",
    }


@require_GET
@account_view(SUPERVISOR)
def sync_status(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    return respond(request, ctx, _sync_context(ctx), page="accounts/sync.html", fragment="accounts/_sync_table.html")


@require_POST
@account_view(SUPERVISOR)
def sync_run(request: HttpRequest, ctx: AccountContext, job: str) -> HttpResponse:
    if job not in SyncState.Job.values:
        raise Http404("No such sync job.")
    try:
        services.sync_run(account=ctx.account, actor=request.user, job=job)
    except ServiceError as error:
        messages.error(request, error.message)
    else:
        messages.success(
            request, _("%(job)s sync queued; this page updates when it runs.") % {"job": SyncState.Job(job).label}
        )
    if not wants_fragment(request):
        return redirect("accounts:sync")
    return respond(request, ctx, _sync_context(ctx), fragment="accounts/_sync_table.html")


# --------------------------------------------------------------------------- users


def _managed_user(request: HttpRequest, pk: int):
    """A user with a role on an account the requester supervises; others are a 404."""
    return get_object_or_404(selectors.managed_users(user=request.user), pk=pk)


def _users_context(request: HttpRequest, ctx: AccountContext) -> dict[str, Any]:
    accounts = list(selectors.supervised_accounts(user=request.user))
    form = UserListForm(request.GET)
    filters, number = _list_state(form, ("q",))
    page = Paginator(selectors.managed_users(user=request.user, q=filters["q"]), PAGE_SIZE).get_page(number)
    rows = []
    for person in page.object_list:
        held = {m.official_account_id: m for m in person.managed_memberships}
        rows.append({"person": person, "roles": [(account, held.get(account.pk)) for account in accounts]})
    return {"rows": rows, "accounts": accounts, "list_form": form, **_list_context(page, filters), "nav": "users"}


@require_GET
@account_view(SUPERVISOR)
def users(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    return respond(
        request, ctx, _users_context(request, ctx), page="accounts/users.html", fragment="accounts/_user_table.html"
    )


@require_http_methods(["GET", "POST"])
@account_view(SUPERVISOR)
def user_add(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    accounts = list(selectors.supervised_accounts(user=request.user))
    form = UserCreateForm(request.POST or None, accounts=accounts, current=ctx.account)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_create(
                actor=request.user,
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password1"],
                roles=form.role_choices(),
            )
        except ServiceError as error:
            form.add_error(None, error.message)
        else:
            messages.success(request, _("Created the user %(name)s.") % {"name": user.get_username()})
            if not wants_fragment(request):
                return redirect("accounts:users")
            return HttpResponseClientRedirect(reverse("accounts:users"))
    return respond(
        request, ctx, {"form": form, "nav": "users"},
        page="accounts/user_add.html", fragment="accounts/_user_add_form.html",
    )


def _user_detail_context(request: HttpRequest, target, **forms: Any) -> dict[str, Any]:
    accounts = list(selectors.supervised_accounts(user=request.user))
    return {
        "target": target,
        "roles_form": forms.get("roles_form") or UserRolesForm(accounts=accounts, user=target),
        "password_form": forms.get("password_form") or SetPasswordForm(target),
        "is_self": target.pk == request.user.pk,
        "can_deactivate": selectors.user_is_fully_managed(user=request.user, target=target),
        "nav": "users",
    }


@require_http_methods(["GET", "POST"])
@account_view(SUPERVISOR)
def user_detail(request: HttpRequest, ctx: AccountContext, pk: int) -> HttpResponse:
    """The user's roles (GET shows, POST saves them)."""
    target = _managed_user(request, pk)
    form = None
    if request.method == "POST":
        accounts = list(selectors.supervised_accounts(user=request.user))
        form = UserRolesForm(request.POST, accounts=accounts, user=target)
        if form.is_valid():
            try:
                services.user_roles_set(actor=request.user, user=target, roles=form.role_choices())
            except ServiceError as error:
                form.add_error(None, error.message)
            else:
                messages.success(request, _("Saved the roles of %(name)s.") % {"name": target.get_username()})
                still_managed = selectors.managed_users(user=request.user).filter(pk=target.pk).exists()
                next_url = (
                    reverse("accounts:user_detail", args=[target.pk]) if still_managed else reverse("accounts:users")
                )
                if not wants_fragment(request):
                    return redirect(next_url)
                if not still_managed:
                    # No role left on an account this supervisor manages: the page is gone.
                    return HttpResponseClientRedirect(next_url)
                form = None
    context = _user_detail_context(request, target, roles_form=form)
    return respond(
        request, ctx, context, page="accounts/user_detail.html", fragment="accounts/_user_roles_form.html"
    )


@require_POST
@account_view(SUPERVISOR)
def user_password(request: HttpRequest, ctx: AccountContext, pk: int) -> HttpResponse:
    target = _managed_user(request, pk)
    if not selectors.user_is_fully_managed(user=request.user, target=target):
        raise Http404("Not managed here.")
    form = SetPasswordForm(target, request.POST)
    shown: SetPasswordForm | None = form
    if form.is_valid():
        services.user_password_set(actor=request.user, user=target, password=form.cleaned_data["new_password1"])
        messages.success(request, _("Set a new password for %(name)s.") % {"name": target.get_username()})
        if not wants_fragment(request):
            return redirect("accounts:user_detail", pk=target.pk)
        shown = None  # saved: the page shows no password form
    context = _user_detail_context(request, target, password_form=shown)
    return respond(
        request, ctx, context, page="accounts/user_detail.html", fragment="accounts/_user_password_form.html"
    )


@require_http_methods(["GET", "POST"])
@account_view(SUPERVISOR)
def user_active(request: HttpRequest, ctx: AccountContext, pk: int) -> HttpResponse:
    """GET: the confirmation step; POST: deactivate (or reactivate) the login."""
    target = _managed_user(request, pk)
    if not selectors.user_is_fully_managed(user=request.user, target=target):
        raise Http404("Not managed here.")
    error = ""
    if request.method == "POST":
        active = request.POST.get("active") == "1"
        try:
            services.user_active_set(actor=request.user, user=target, active=active)
        except ServiceError as exc:
            error = exc.message
        else:
            text = _("%(name)s can log in again.") if active else _("%(name)s can no longer log in.")
            messages.success(request, text % {"name": target.get_username()})
            if not wants_fragment(request):
                return redirect("accounts:users")
            return HttpResponseClientRedirect(reverse("accounts:users"))
    context = {"target": target, "error": error, "nav": "users"}
    return respond(
        request, ctx, context, page="accounts/user_active.html", fragment="accounts/_user_active_dialog.html"
    )


# --------------------------------------------------------------------------- alert settings


def _alert_settings_context(request: HttpRequest, ctx: AccountContext, **forms: Any) -> dict[str, Any]:
    preference = selectors.alert_preference(user=request.user)
    context: dict[str, Any] = {
        "preference_form": forms.get("preference_form") or AlertPreferenceForm(
            initial={"title_count": preference.title_count, "sound": preference.sound, "notify": preference.notify}
        ),
        "nav": "alert_settings",
    }
    if ctx.is_supervisor:
        context["thresholds_form"] = forms.get("thresholds_form") or AlertThresholdsForm(
            initial={
                "queue_wait_minutes": max(1, round(ctx.account.alert_queue_wait_seconds / 60)),
                "unanswered_minutes": max(1, round(ctx.account.alert_unanswered_seconds / 60)),
            }
        )
    return context


@require_http_methods(["GET", "POST"])
@account_view(SUPERVISOR, AGENT)
def alert_settings(request: HttpRequest, ctx: AccountContext) -> HttpResponse:
    """Each person's alerts (title count, sound, notification) and, for supervisors,
    the official account's thresholds. Two forms, told apart by `form`."""
    forms: dict[str, Any] = {}
    if request.method == "POST":
        which = request.POST.get("form")
        if which == "thresholds":
            if not ctx.is_supervisor:
                raise PermissionDenied("Only supervisors change the thresholds.")
            thresholds = AlertThresholdsForm(request.POST)
            if thresholds.is_valid():
                services.alert_thresholds_set(
                    account=ctx.account, actor=request.user,
                    queue_wait_seconds=thresholds.cleaned_data["queue_wait_minutes"] * 60,
                    unanswered_seconds=thresholds.cleaned_data["unanswered_minutes"] * 60,
                )
                messages.success(request, _("The thresholds are saved."))
                return redirect("accounts:alert_settings")
            forms["thresholds_form"] = thresholds
        else:
            preference = AlertPreferenceForm(request.POST)
            if preference.is_valid():
                services.alert_preference_set(user=request.user, account=ctx.account, **preference.cleaned_data)
                messages.success(request, _("Your alert settings are saved."))
                return redirect("accounts:alert_settings")
            forms["preference_form"] = preference
    return respond(request, ctx, _alert_settings_context(request, ctx, **forms), page="accounts/alert_settings.html")
