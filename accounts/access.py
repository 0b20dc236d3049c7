"""Who may see what: the one place for permission checks on pages and fragments.

A dashboard user works on one official account at a time (kept in the session),
chosen among those a `Membership` gives them. Every view that shows or changes
account data is wrapped in `account_view(...)`, which resolves the account and the
user's role before the view runs and answers 403 otherwise — fragments included,
since a fragment endpoint can be requested directly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.functional import SimpleLazyObject

from accounts.models import Agent, Membership, OfficialAccount

SESSION_KEY = "kfadmin_account_id"

SUPERVISOR = Membership.Role.SUPERVISOR
AGENT = Membership.Role.AGENT
AUDITOR = Membership.Role.AUDITOR
ALL_ROLES = (SUPERVISOR, AGENT, AUDITOR)


@dataclass(frozen=True)
class AccountContext:
    account: OfficialAccount
    role: str
    # For the agent role: the kf account this person works as.
    agent: Agent | None = None

    @property
    def role_label(self) -> str:
        return str(Membership.Role(self.role).label)

    @property
    def is_supervisor(self) -> bool:
        return self.role == SUPERVISOR

    @property
    def is_agent(self) -> bool:
        return self.role == AGENT

    @property
    def is_auditor(self) -> bool:
        return self.role == AUDITOR

    @property
    def can_send(self) -> bool:
        return self.role in (SUPERVISOR, AGENT)


def accounts_for_user(user) -> QuerySet[OfficialAccount]:
    """The official accounts a user may open. Superusers (operators) see all of them."""
    accounts = OfficialAccount.objects.filter(is_active=True)
    if user.is_superuser:
        return accounts
    return accounts.filter(memberships__user=user).distinct()


# What the per-request lookup reads of each row: the columns every request may need,
# all of them integers and text, which every database backend returns as Python
# values with no conversion. The rest (secrets, timestamps) is loaded on first access,
# as with QuerySet.only().
_ACCOUNT_READ = {"id", "name", "appid", "wechat_id", "original_id", "api_base_url", "token_endpoint",
                 "time_zone", "agent_capacity", "waiting_count", "alert_queue_wait_seconds", "alert_unanswered_seconds"}
_AGENT_READ = {"id", "official_account_id", "kf_account", "kf_id", "kf_nick", "kf_headimgurl", "kf_wx",
               "invite_wx", "invite_status", "online_status", "accepted_case"}


def _in_model_order(model, names: set[str]) -> tuple[str, ...]:
    # Model.from_db() takes the values in the order of the model's fields.
    return tuple(f.attname for f in model._meta.concrete_fields if f.attname in names)


@functools.cache
def _context_query(vendor: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """One hand-written join, built once per process. Every page and every poll runs
    it; the same read through the ORM (select_related + only) took 1.0 ms instead of
    0.3 ms, and cost the polled fragments served from the cache a quarter of their
    throughput in bench/dashboard.py (docs/performance.md, "The per-request reads").
    Returns the SQL and the account's and agent's field names, in the selected order."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    account_fields = _in_model_order(OfficialAccount, _ACCOUNT_READ)
    agent_fields = _in_model_order(Agent, _AGENT_READ)

    def columns(model, alias: str, names: tuple[str, ...]) -> list[str]:
        return [f"{alias}.{quote(model._meta.get_field(n).column)}" for n in names]

    selected = [f"m.{quote('role')}"] + columns(OfficialAccount, "a", account_fields) + columns(Agent, "g", agent_fields)
    sql = (
        f"SELECT {', '.join(selected)} "
        f"FROM {quote(Membership._meta.db_table)} m "
        f"JOIN {quote(OfficialAccount._meta.db_table)} a ON a.{quote('id')} = m.{quote('official_account_id')} "
        f"LEFT JOIN {quote(Agent._meta.db_table)} g ON g.{quote('id')} = m.{quote('agent_id')} "
        f"WHERE m.{quote('user_id')} = %s AND m.{quote('official_account_id')} = %s AND a.{quote('is_active')}"
    )
    return sql, account_fields, agent_fields


def _context_for_id(user, account_id: int) -> AccountContext | None:
    """The context for the account kept in the session: account, role and agent in one
    query, since every page and every poll asks for it."""
    connection = connections[DEFAULT_DB_ALIAS]
    sql, account_fields, agent_fields = _context_query(connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, [user.pk, account_id])
        row = cursor.fetchone()  # (user, account) is unique: one row at most
    if row is not None:
        role, split = row[0], 1 + len(account_fields)
        account = OfficialAccount.from_db(DEFAULT_DB_ALIAS, account_fields, row[1:split])
        agent = None
        if role == AGENT and row[split] is not None:
            agent = Agent.from_db(DEFAULT_DB_ALIAS, agent_fields, row[split:])
        return AccountContext(account=account, role=role, agent=agent)
    if user.is_superuser:
        any_account = OfficialAccount.objects.filter(pk=account_id, is_active=True).first()
        return AccountContext(account=any_account, role=SUPERVISOR) if any_account is not None else None
    return None


def current_context(request: HttpRequest) -> AccountContext | None:
    """The account the user is working on, falling back to the first they may open."""
    cached = getattr(request, "_kf_context", None)
    if cached is not None:
        return cached
    user = request.user
    if not user.is_authenticated:
        return None
    account_id = request.session.get(SESSION_KEY)
    context = _context_for_id(user, account_id) if isinstance(account_id, int) else None
    if context is None:
        account = accounts_for_user(user).first()
        if account is None:
            return None
        request.session[SESSION_KEY] = account.pk
        context = _context_for_id(user, account.pk)
    request._kf_context = context  # type: ignore[attr-defined]  # a per-request cache on Django's request
    return context


def context_switch(request: HttpRequest, account_id: int) -> AccountContext:
    """Make `account_id` the current account, if the user may open it."""
    account = accounts_for_user(request.user).filter(pk=account_id).first()
    if account is None:
        raise PermissionDenied("You have no access to that official account.")
    request.session[SESSION_KEY] = account.pk
    request._kf_context = None  # type: ignore[attr-defined]  # a per-request cache on Django's request
    context = current_context(request)
    assert context is not None
    return context


def account_view(*roles: str) -> Callable:
    """Decorate a view taking (request, ctx, ...): ctx is the AccountContext.

    With no official account the user sees a page saying so; with the wrong role, 403.
    """
    allowed_roles: Iterable[str] = roles or ALL_ROLES

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            ctx = current_context(request)
            if ctx is None:
                return render(request, "core/no_account.html", status=403)
            if ctx.role not in allowed_roles:
                raise PermissionDenied("Your role does not allow this.")
            return view(request, ctx, *args, **kwargs)

        return wrapper

    return decorator


def header_context(request: HttpRequest) -> dict:
    """Template context for the header: the account switcher and the user's role."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return {}
    user = request.user
    return {
        "kf_ctx": current_context(request),
        # Read only by the page header: a fragment rendered with this context never asks.
        "kf_accounts": SimpleLazyObject(lambda: list(accounts_for_user(user).only("id", "name"))),
    }
