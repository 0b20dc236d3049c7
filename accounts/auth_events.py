"""Logins, logouts, failed logins and lockouts in the audit log.

The audit log is kept per official account, so an event about a user is written to
each official account they have a role on: the supervisors (and auditors) of those
accounts see who logged in, and who tried and failed with that username from where.
A name that is nobody's, or an operator without a role, gets one row without an
account (in the admin's audit list). Django and django-axes announce these events
only through signals, hence the receivers; `accounts.apps` connects them.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.http import HttpRequest
from django.utils.translation import gettext_noop

from accounts.audit import audit_event_record
from accounts.models import Membership, OfficialAccount

# Kept in English in the row and translated when the log is shown.
LOCKOUT_NOTE = gettext_noop(
    "Too many failed logins: this username is locked out from this address for a while."
)


def _client_ip(request: HttpRequest | None) -> str:
    if request is None:
        return ""
    # Axes resolves the client's address (through TRUSTED_PROXY_COUNT proxies).
    return getattr(request, "axes_ip_address", None) or request.META.get("REMOTE_ADDR", "")


def _accounts_of(username: str) -> list[OfficialAccount | None]:
    accounts: list[OfficialAccount | None] = [
        m.official_account
        for m in Membership.objects.filter(user__username=username).select_related("official_account")
    ]
    return accounts or [None]


def _record(*, actor, username: str, action: str, request, ok: bool = True, message: str = "") -> None:
    params = {"ip": _client_ip(request)}
    for account in _accounts_of(username):
        audit_event_record(
            actor=actor,
            action=action,
            official_account=account,
            target=username,
            params=params,
            ok=ok,
            message=message,
        )


def on_logged_in(sender, request, user, **kwargs) -> None:
    _record(actor=user, username=user.get_username(), action="login", request=request)


def on_logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        _record(actor=user, username=user.get_username(), action="logout", request=request)


def on_login_failed(sender, credentials: dict, request=None, **kwargs) -> None:
    username_field = get_user_model().USERNAME_FIELD
    username = str(credentials.get(username_field) or credentials.get("username") or "")[:150]
    # Axes counted this attempt just before (its app comes first). No count means it
    # refused the attempt unchecked during a lockout, which is already recorded.
    if request is not None and getattr(request, "axes_failures_since_start", 0) is None:
        return
    _record(actor=None, username=username, action="login_failed", request=request, ok=False)
    if getattr(request, "axes_locked_out", False):
        _record(actor=None, username=username, action="login_lockout", request=request, ok=False, message=LOCKOUT_NOTE)
